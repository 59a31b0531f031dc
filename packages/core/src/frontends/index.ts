// The frontends: dockerfile() and stacker() and their translation, and convert. A module of their
// own so that the CLI loads them (and their parsers) only for a config that calls them.
export { dockerfile } from "./dockerfile/index.ts";
export type { DockerfileOptions } from "./dockerfile/index.ts";
export { stacker } from "./stacker/index.ts";
export type { StackerOptions } from "./stacker/index.ts";
export { convertToImagesTs } from "./convert.ts";
