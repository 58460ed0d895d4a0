// Verifies the benchmark's token set with Node's `jose` and `jsonwebtoken` (Buffer secret,
// and a KeyObject, its fast path), checking issuer and audience as our authorizer does.
// Prints one JSON line per library: {"name", "ns_per_op": [run medians...]}.
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
const RUNS = 7, OPS = 20000;

async function measure(name, verify) {
  for (let i = 0; i < 5000; i++) await verify(tokens[i % tokens.length]); // warm-up, JIT
  const runs = [];
  for (let r = 0; r < RUNS; r++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < OPS; i++) await verify(tokens[i % tokens.length]);
    runs.push(Number(process.hrtime.bigint() - start) / OPS);
  }
  console.log(JSON.stringify({ name, ns_per_op: runs }));
}

const joseOptions = { issuer, audience, algorithms: ["HS256"], typ: "at+jwt" };
const jwtOptions = { issuer, audience, algorithms: ["HS256"] };
await measure("node jose jwtVerify (Uint8Array key)", (t) => jwtVerify(t, new Uint8Array(secret), joseOptions));
await measure("node jose jwtVerify (KeyObject)", (t) => jwtVerify(t, keyObject, joseOptions));
const cryptoKey = await crypto.subtle.importKey("raw", secret, { name: "HMAC", hash: "SHA-256" }, false, ["verify"]);
await measure("node jose jwtVerify (CryptoKey imported once)", (t) => jwtVerify(t, cryptoKey, joseOptions));
await measure("node jsonwebtoken.verify (Buffer secret)", (t) => jsonwebtoken.verify(t, secret, jwtOptions));
await measure("node jsonwebtoken.verify (KeyObject)", (t) => jsonwebtoken.verify(t, keyObject, jwtOptions));
