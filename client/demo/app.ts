// The demo page: sign in, watch the token refresh itself, list and end sessions. Everything
// it knows about the session comes through the library, as an app's would.
import { AuthError, createAuthClient, type AuthEvent, type AuthPaths } from "../src/index.js";

interface DemoConfig {
  baseUrl: string;
  paths: AuthPaths;
  sessionsPath: string;
  username: string;
}

interface Session {
  session_id: string;
  created_at: number;
  last_used_at: number;
  user_agent?: string;
  current: boolean;
}

const config = (await (await fetch("/config.json")).json()) as DemoConfig;
const auth = createAuthClient({ baseUrl: config.baseUrl, paths: config.paths });
const sessionsUrl = config.baseUrl + config.sessionsPath;

const $ = (id: string) => document.getElementById(id)!;
const count = (id: string) => ($(id).textContent = String(Number($(id).textContent) + 1));
const time = (epochSeconds: number) => new Date(epochSeconds * 1000).toLocaleTimeString();

let polling: ReturnType<typeof setInterval> | undefined;
let loading = false;

function setStatus(state: "signed-in" | "signed-out" | "retrying", text: string) {
  $("status").dataset.state = state;
  $("status").textContent = text;
}

function logEvent(event: AuthEvent) {
  const item = document.createElement("li");
  const detail =
    event.type === "SIGNED_OUT"
      ? ` ${event.reason}`
      : event.type === "REFRESH_RETRYING"
        ? ` ${event.error.code}, next try in ${event.retryInMs} ms`
        : event.type === "LOGOUT_PENDING"
          ? ` ${event.error.code}`
          : "";
  item.textContent = `${new Date().toLocaleTimeString()} ${event.type}${detail}`;
  item.dataset.type = event.type;
  $("events").prepend(item);
}

auth.onAuthStateChange((event) => {
  logEvent(event);
  if (event.type === "SIGNED_IN" || event.type === "TOKEN_REFRESHED") {
    if (event.type === "TOKEN_REFRESHED") count("refreshes");
    setStatus("signed-in", `Signed in as ${config.username}`);
    $("user").textContent = event.claims?.sub ?? "";
    $("session").textContent = event.claims?.sid ?? "";
    $("signed-in").hidden = false;
    $("login-form").hidden = true;
    polling ??= setInterval(loadSessions, 1000);
  } else if (event.type === "SIGNED_OUT") {
    setStatus("signed-out", `Signed out (${event.reason})`);
    $("signed-in").hidden = true;
    $("login-form").hidden = false;
    clearInterval(polling);
    polling = undefined;
  } else if (event.type === "LOGOUT_PENDING") {
    setStatus("signed-out", `Signed out here, but the logout did not reach the server (${event.error.code}): it is sent again when this page next loads`);
  } else {
    setStatus("retrying", `Retrying: the auth server is unreachable (try ${event.attempt} failed with ${event.error.code}); still signed in`);
  }
});

/** The protected call, through the library's fetch: once a second while signed in. */
async function loadSessions() {
  if (loading) return;
  loading = true;
  try {
    const response = await auth.fetch(sessionsUrl);
    $("api-last").textContent = `GET /auth/sessions → ${response.status} at ${new Date().toLocaleTimeString()}`;
    if (response.status === 401) count("api-401");
    if (!response.ok) {
      count("api-failed");
      return;
    }
    count("api-ok");
    renderSessions(((await response.json()) as { sessions: Session[] }).sessions);
  } catch (error) {
    $("api-last").textContent = `GET /auth/sessions: ${error instanceof AuthError ? error.code : String(error)}`;
    count("api-failed");
  } finally {
    loading = false;
  }
}

function renderSessions(sessions: Session[]) {
  const rows = sessions.map((session) => {
    const row = document.createElement("tr");
    row.dataset.sessionId = session.session_id;
    for (const text of [session.session_id, time(session.created_at), time(session.last_used_at), session.user_agent ?? ""]) {
      row.insertCell().textContent = text;
    }
    const action = row.insertCell();
    if (session.current) {
      action.textContent = "this session";
    } else {
      const end = document.createElement("button");
      end.textContent = "End this other session";
      end.addEventListener("click", async () => {
        const response = await auth.fetch(`${sessionsUrl}/${encodeURIComponent(session.session_id)}`, { method: "DELETE" });
        $("api-last").textContent = `DELETE /auth/sessions/… → ${response.status}`;
        await loadSessions();
      });
      action.append(end);
    }
    return row;
  });
  $("sessions").replaceChildren(...rows);
}

// The countdown reads the claims every 100 ms; the library refreshes on its own.
setInterval(() => {
  const claims = auth.getClaims();
  $("countdown").textContent = claims ? `${Math.max(0, claims.exp - Date.now() / 1000).toFixed(1)} s` : "";
}, 100);

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("login-error").textContent = "";
  try {
    await auth.login(($("username") as HTMLInputElement).value, ($("password") as HTMLInputElement).value);
    ($("password") as HTMLInputElement).value = "";
  } catch (error) {
    $("login-error").textContent = error instanceof AuthError ? `${error.code}: ${error.message}` : String(error);
  }
});
$("logout").addEventListener("click", () => auth.logout().catch((error: unknown) => ($("login-error").textContent = String(error))));
$("logout-everywhere").addEventListener("click", () =>
  auth.logout({ everywhere: true }).catch((error: unknown) => ($("login-error").textContent = String(error))),
);

($("username") as HTMLInputElement).value = config.username;
// A session from before this page (a reload, another tab) is picked up through the refresh cookie.
if ((await auth.getAccessToken().catch(() => null)) === null && $("status").dataset.state === "unknown") {
  setStatus("signed-out", "Signed out");
}
