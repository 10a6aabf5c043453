/** `cache status | verify | gc | clear`: looking after the content-addressed store. */
export async function cacheCommand(_args: string[], _flags: object): Promise<number> {
  throw new Error('cache commands: written with the reliability issue');
}
