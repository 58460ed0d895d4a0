// Signs in at the local provider as a browser would, through its real login and consent
// pages, and prints where it sends the browser back (the client's redirect URI with `code`
// and `state`, or an `error`).
//
//   node sign_in.mjs '<authorization URL>' alice@example.com
const [start, login] = process.argv.slice(2);
const provider = new URL(start).origin;
const cookies = new Map();

async function request(url, body) {
  const headers = { cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join('; ') };
  if (body) headers['content-type'] = 'application/x-www-form-urlencoded';
  const response = await fetch(url, { method: body ? 'POST' : 'GET', body, headers, redirect: 'manual' });
  for (const line of response.headers.getSetCookie()) {
    const [pair] = line.split(';');
    const at = pair.indexOf('=');
    cookies.set(pair.slice(0, at), pair.slice(at + 1));
  }
  return response;
}

let url = start;
let body;
for (let step = 0; step < 12; step += 1) {
  const response = await request(url, body);
  body = undefined;
  const location = response.headers.get('location');
  if (location) {
    url = new URL(location, url).href;
    if (new URL(url).origin !== provider) {
      console.log(url);
      process.exit(0);
    }
    continue;
  }
  const html = await response.text();
  const action = html.match(/<form[^>]*action="([^"]+)"/)?.[1];
  const prompt = html.match(/name="prompt" value="([^"]+)"/)?.[1];
  if (!action || !prompt) {
    console.error(`no form at ${url} (${response.status}): ${html.slice(0, 300)}`);
    process.exit(1);
  }
  url = new URL(action.replaceAll('&amp;', '&'), url).href;
  body = new URLSearchParams(prompt === 'login' ? { prompt, login, password: 'any' } : { prompt }).toString();
}
console.error('too many steps');
process.exit(1);
