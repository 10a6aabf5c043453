/**
 * Fixed-width columns of a DuckDB result read straight from DuckDB's vectors, one chunk
 * (2,048 rows) at a time: typed-array views, no value-by-value conversion. The node-api's
 * per-value path costs ~100 ns a value, which is most of the time when the analysis walks
 * 20M sorted values; these views cost next to nothing.
 *
 * The chunks of a materialised result are read synchronously through the C API
 * (`duckdb_result_get_chunk`); a streamed result, or one whose node-api object does not
 * expose its handle (another version), is read through the public `fetchChunk()`, which is
 * correct but slower.
 */
import duckdb from '@duckdb/node-bindings';
import type {DuckDBConnection, DuckDBResult} from '@duckdb/node-api';

/** The column types this reader understands. */
export type ColumnKind = 'uint32' | 'double';

/** The typed arrays handed to the visitor, in the order of the requested kinds. */
export type ColumnViews<K extends readonly ColumnKind[]> = {[I in keyof K]: K[I] extends 'uint32' ? Uint32Array : Float64Array};

// Type ids from the bindings (the same numbers as the node-api's DuckDBTypeId): importing the
// node-api here would load it from node_modules beside the copy bundled into the CLI.
const TYPES: Record<ColumnKind, {id: number; bytes: number; name: string}> = {
  uint32: {id: duckdb.Type.UINTEGER, bytes: 4, name: 'UINTEGER'},
  double: {id: duckdb.Type.DOUBLE, bytes: 8, name: 'DOUBLE'},
};

/** A query result whose chunks can be walked as typed arrays. */
export class ColumnResult<K extends readonly ColumnKind[]> {
  readonly #result: DuckDBResult;
  readonly #kinds: K;

  constructor(result: DuckDBResult, kinds: K) {
    checkTypes(result, kinds);
    this.#result = result;
    this.#kinds = kinds;
  }

  /**
   * Calls `visit(size, columns)` for each chunk, in order; the views are valid only during the
   * call. Columns must not contain NULLs. Stops early when `signal` aborts. Returns the rows seen.
   */
  async forEachChunk(visit: (size: number, columns: ColumnViews<K>) => void, signal?: AbortSignal): Promise<number> {
    let rows = 0;
    const read = (chunk: duckdb.DataChunk): void => {
      const size = duckdb.data_chunk_get_size(chunk);
      if (size === 0) return;
      visit(size, this.#kinds.map((kind, i) => view(chunk, i, kind, size)) as ColumnViews<K>);
      rows += size;
    };
    const handle = (this.#result as unknown as {result?: duckdb.Result}).result;
    if (handle !== undefined && !duckdb.result_is_streaming(handle)) {
      const count = duckdb.result_chunk_count(handle);
      for (let i = 0; i < count && !signal?.aborted; i++) read(duckdb.result_get_chunk(handle, i));
      return rows;
    }
    // The next chunk is fetched (on DuckDB's threads) while this one is read.
    let next = this.#result.fetchChunk();
    for (let chunk = await next; chunk !== null && chunk.rowCount > 0 && !signal?.aborted; chunk = await next) {
      next = this.#result.fetchChunk();
      read(chunk.chunk);
    }
    await next.catch(() => undefined);
    return rows;
  }
}

/**
 * Runs `sql`; its columns must be of `kinds`. `materialized` runs it to completion (the
 * fastest to read), `streamed` hands out chunks as they are read (bounded memory: a
 * materialised result lives until the garbage collector finalises it, which node-bindings
 * gives no way to hasten, so large results are streamed).
 */
export async function queryColumns<K extends readonly ColumnKind[]>(
  conn: DuckDBConnection,
  sql: string,
  kinds: K,
  mode: 'materialized' | 'streamed' = 'materialized',
): Promise<ColumnResult<K>> {
  return new ColumnResult(mode === 'streamed' ? await conn.stream(sql) : await conn.run(sql), kinds);
}

function checkTypes(result: DuckDBResult, kinds: readonly ColumnKind[]): void {
  if (result.columnCount !== kinds.length) throw new Error(`expected ${kinds.length} columns, the query returns ${result.columnCount}`);
  for (const [i, kind] of kinds.entries()) {
    if (Number(result.columnTypeId(i)) !== TYPES[kind].id) throw new Error(`column ${i} (${result.columnName(i)}) must be ${TYPES[kind].name}, is ${result.columnType(i).toString()}`);
  }
}

function view(chunk: duckdb.DataChunk, column: number, kind: ColumnKind, size: number): Uint32Array | Float64Array {
  const vector = duckdb.data_chunk_get_vector(chunk, column);
  const validity = duckdb.vector_get_validity(vector, Math.ceil(size / 64) * 8) as Uint8Array | null;
  if (validity && !allValid(validity, size)) throw new Error(`column ${column} contains NULL`);
  const bytes = duckdb.vector_get_data(vector, size * TYPES[kind].bytes);
  return kind === 'uint32' ? new Uint32Array(bytes.buffer, bytes.byteOffset, size) : new Float64Array(bytes.buffer, bytes.byteOffset, size);
}

function allValid(validity: Uint8Array, size: number): boolean {
  const whole = size >>> 3;
  for (let i = 0; i < whole; i++) if (validity[i] !== 0xff) return false;
  const rest = size & 7;
  return rest === 0 || (validity[whole]! & ((1 << rest) - 1)) === (1 << rest) - 1;
}
