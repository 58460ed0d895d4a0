// Prints the library's size as an app would ship it: bundled into one module, minified,
// gzipped. A printed figure, not a check: the README's target is 4 KB.
import { build } from "esbuild";
import { gzipSync } from "node:zlib";

const { outputFiles } = await build({
  entryPoints: [new URL("../dist/src/index.js", import.meta.url).pathname],
  bundle: true,
  minify: true,
  format: "esm",
  write: false,
});
const code = outputFiles[0].contents;
const kb = (bytes) => `${(bytes / 1024).toFixed(2)} KB`;
console.log(`client bundle: ${kb(code.length)} minified, ${kb(gzipSync(code, { level: 9 }).length)} minified + gzipped (target: 4 KB gzipped)`);
