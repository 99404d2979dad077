/**
 * `npm:pg` as storages/postgres.ts sees it: untyped, and cast to the two
 * members it uses where it imports them. Declared here so that tools that
 * walk the published modules' types (`deno doc`) do not load `@types/pg`
 * and `@types/node`.
 */
declare const pg: unknown;
export default pg;
