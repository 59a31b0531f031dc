import { DockerfileParser } from "dockerfile-ast";
import { readFileSync } from "node:fs";
const text = readFileSync("/tmp/Dockerfile.t", "utf8");
const df = DockerfileParser.parse(text);
for (const i of df.getInstructions()) {
  console.log(i.getKeyword(), JSON.stringify(i.getArgumentsContent()), JSON.stringify(i.getRawArgumentsContent()), JSON.stringify(i.getArgumentsRange()));
}
