// Host files two ways: a bind mount that a step reads while it runs (stacker `binds`), and a host
// directory copied into an image without running anything (stacker `overlay_dirs`).
import { debian, local, scratch, stage } from "mstage";

// Reads ./notes through a read-only bind: the notes are never part of this stage's layer, but
// their content is part of its key, so editing a note rebuilds the index.
const index = stage("index", {
  from: debian({ suite: "bookworm", packages: ["golang-go"] }),
  binds: { "/notes": { host: "./notes", readonly: true } },
  run: "mkdir -p /out && (cd /notes && for f in *.txt; do printf '%s: %s\\n' \"$f\" \"$(head -n1 \"$f\")\"; done) > /out/index.txt",
});

// Nothing runs here: scratch has no shell. The files are copied straight into the layer.
export const site = stage("site", {
  from: scratch(),
  copy: {
    "/srv/www": local("./public", { owner: "101:101" }),
    "/srv/www/notes-index.txt": index.path("/out/index.txt", { mode: 0o644 }),
  },
  labels: { "org.opencontainers.image.title": "static site" },
});
