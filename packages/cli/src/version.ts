// The version of the `mstage` package, read from its package.json when the CLI is bundled.
import pkg from "../package.json" with { type: "json" };

export const VERSION: string = pkg.version;
