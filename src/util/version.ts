/**
 * What a version may be: letters, digits, ".", "_" and "-", at most 64. A version names the
 * output folder (`<old>_vs_<new>`) and travels on command lines and in HTTP requests, so
 * nothing that could be a path, a quote or SQL gets through.
 */
export const VERSION_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export const VERSION_RULE = 'a version is letters, digits, ".", "_" and "-" (at most 64), such as 0.3615';
