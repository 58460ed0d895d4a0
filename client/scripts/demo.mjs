// Bundles the demo page's script into dist/demo/page.js, the one file index.html loads:
// tsc's dist/demo/app.js with the library and the demo's QR code generator (a
// devDependency: a browser resolves no bare import). The library ships none of it.
import { build } from "esbuild";

await build({
  entryPoints: [new URL("../dist/demo/app.js", import.meta.url).pathname],
  outfile: new URL("../dist/demo/page.js", import.meta.url).pathname,
  bundle: true,
  format: "esm",
  target: "es2022",
  logLevel: "warning",
});
