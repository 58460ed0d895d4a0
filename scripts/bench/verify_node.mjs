// Verifies the benchmark's token set with Node's `jose` and `jsonwebtoken` (Buffer secret,
// and a KeyObject, its fast path), checking issuer and audience as our authorizer does.
// Prints one JSON line per library: {"name", "ns_per_op": [mean of each run], "ops_per_run"}.
import { readFileSync } from "node:fs";
import { createSecretKey } from "node:crypto";
import { createRequire } from "node:module";
import { jwtVerify } from "jose";

const require = createRequire(import.meta.url);
const jsonwebtoken = require("jsonwebtoken");
const data = JSON.parse(readFileSync(process.argv[2], "utf8"));
const secret = Buffer.from(data.secret_b64url, "base64url");
const keyObject = createSecretKey(secret);
const { tokens, issuer, audience } = data;
// Seven timed runs of about RUN_NS each, after a second of warm-up (JIT), sized from the
// warm speed: a slow verifier gets fewer operations per run, not minutes of benchmark.
const RUNS = 7, RUN_NS = 400e6, WARM_UP_NS = 1e9, MIN_OPS = 1000;

async function timeOps(verify, ops) {
  const start = process.hrtime.bigint();
  for (let i = 0; i < ops; i++) await verify(tokens[i % tokens.length]);
  return Number(process.hrtime.bigint() - start);
}

async function measure(name, verify) {
  let elapsed = await timeOps(verify, MIN_OPS);
  for (let warmed = elapsed; warmed < WARM_UP_NS; warmed += elapsed) elapsed = await timeOps(verify, MIN_OPS);
  const ops = Math.max(MIN_OPS, Math.round((RUN_NS * MIN_OPS) / elapsed));
  const runs = [];
  for (let r = 0; r < RUNS; r++) runs.push((await timeOps(verify, ops)) / ops);
  console.log(JSON.stringify({ name, ns_per_op: runs, ops_per_run: ops }));
}

const joseOptions = { issuer, audience, algorithms: ["HS256"], typ: "at+jwt" };
const jwtOptions = { issuer, audience, algorithms: ["HS256"] };
await measure("node jose jwtVerify (Uint8Array key)", (t) => jwtVerify(t, new Uint8Array(secret), joseOptions));
await measure("node jose jwtVerify (KeyObject)", (t) => jwtVerify(t, keyObject, joseOptions));
const cryptoKey = await crypto.subtle.importKey("raw", secret, { name: "HMAC", hash: "SHA-256" }, false, ["verify"]);
await measure("node jose jwtVerify (CryptoKey imported once)", (t) => jwtVerify(t, cryptoKey, joseOptions));
await measure("node jsonwebtoken.verify (Buffer secret)", (t) => jsonwebtoken.verify(t, secret, jwtOptions));
await measure("node jsonwebtoken.verify (KeyObject)", (t) => jsonwebtoken.verify(t, keyObject, jwtOptions));
