// Placeholder until the API lands (issue 2): the shapes are final, the bodies are not.
import type { Base, FileOptions, InlineSource, LocalSource, Stage } from "../model.ts";

export interface StageOptions { from: Base | Stage; [key: string]: unknown }
export interface LocalOptions extends FileOptions { exclude?: string[] }
export interface ImageOptions { platform?: string }
export interface DebianOptions { suite: string; packages?: string[]; mirror?: string; variant?: string }

const todo = (): never => { throw new Error("not implemented yet"); };
export function stage(_name: string, _spec: StageOptions): Stage { return todo(); }
export function image(_ref: string, _o?: ImageOptions): Base { return todo(); }
export function scratch(): Base { return todo(); }
export function oci(_layout: string, _ref?: string): Base { return todo(); }
export function tarball(_source: LocalSource): Base { return todo(); }
export function debian(_o: DebianOptions): Base { return todo(); }
export function local(_path: string, _o?: LocalOptions): LocalSource { return todo(); }
export function inline(_text: string, _o?: FileOptions): InlineSource { return todo(); }
