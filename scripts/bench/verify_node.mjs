// Verifies the benchmark's token sets (ES256 and EdDSA, written by shared/benches/hot_paths.rs)
// with Node's `jose` (jwtVerify with the key from importJWK, and with a KeyObject),
// `jsonwebtoken` (with a KeyObject built from the same JWK) and `aws-jwt-verify` (JwtVerifier
// with the JWKS cached, verifySync), each checking issuer, audience, expiry and the algorithm
// as our authorizer does (jose also `typ`). Prints one JSON line per library and algorithm:
// {"name", "alg", "ns_per_op": [mean of each run], "ops_per_run"}, or {"name", "alg",
// "unsupported": <the library's own error>} when the library cannot verify that algorithm.
import { readFileSync } from "node:fs";
import { createPublicKey } from "node:crypto";
import { createRequire } from "node:module";
import { importJWK, jwtVerify } from "jose";
import { JwtVerifier } from "aws-jwt-verify";

const require = createRequire(import.meta.url);
const jsonwebtoken = require("jsonwebtoken");
const { issuer, audience, sets } = JSON.parse(readFileSync(process.argv[2], "utf8"));
// Seven timed runs of about RUN_NS each, after a second of warm-up (JIT), sized from the
// warm speed: a slow verifier gets fewer operations per run, not minutes of benchmark.
const RUNS = 7, RUN_NS = 400e6, WARM_UP_NS = 1e9, MIN_OPS = 1000;

async function timeOps(tokens, verify, ops) {
  const start = process.hrtime.bigint();
  for (let i = 0; i < ops; i++) await verify(tokens[i % tokens.length]);
  return Number(process.hrtime.bigint() - start);
}

async function measure(name, alg, tokens, verify) {
  // A library that cannot verify this algorithm says so on the first token: that is
  // reported as it is, not measured.
  try {
    await verify(tokens[0]);
  } catch (error) {
    console.log(JSON.stringify({ name, alg, unsupported: String(error.message ?? error) }));
    return;
  }
  let elapsed = await timeOps(tokens, verify, MIN_OPS);
  for (let warmed = elapsed; warmed < WARM_UP_NS; warmed += elapsed) elapsed = await timeOps(tokens, verify, MIN_OPS);
  const ops = Math.max(MIN_OPS, Math.round((RUN_NS * MIN_OPS) / elapsed));
  const runs = [];
  for (let r = 0; r < RUNS; r++) runs.push((await timeOps(tokens, verify, ops)) / ops);
  console.log(JSON.stringify({ name, alg, ns_per_op: runs, ops_per_run: ops }));
}

for (const { alg, jwk, tokens } of sets) {
  const joseOptions = { issuer, audience, algorithms: [alg], typ: "at+jwt" };
  const cryptoKey = await importJWK(jwk, alg);
  await measure("node jose jwtVerify (importJWK key)", alg, tokens, (t) => jwtVerify(t, cryptoKey, joseOptions));
  const keyObject = createPublicKey({ key: jwk, format: "jwk" });
  await measure("node jose jwtVerify (KeyObject)", alg, tokens, (t) => jwtVerify(t, keyObject, joseOptions));
  const jwtOptions = { issuer, audience, algorithms: [alg] };
  await measure("node jsonwebtoken.verify (KeyObject)", alg, tokens, (t) => jsonwebtoken.verify(t, keyObject, jwtOptions));
  // The JWKS handed over up front (cacheJwks), so nothing is fetched; the verifier pins
  // each key to the JWK's own `alg`.
  const verifier = JwtVerifier.create({ issuer, audience, jwksUri: `${issuer}/.well-known/jwks.json` });
  verifier.cacheJwks({ keys: [jwk] });
  await measure("node aws-jwt-verify verifySync (JWKS cached)", alg, tokens, (t) => verifier.verifySync(t));
}
