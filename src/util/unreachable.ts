/** Marks the default branch of an exhaustive switch; a type error if a case is missing. */
export function unreachable(value: never): never {
  throw new Error(`Unexpected value: ${JSON.stringify(value)}`);
}
