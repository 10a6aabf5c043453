import {DuckDBInstance} from '@duckdb/node-api';
const database = process.argv[2]!;
const mode = process.argv[3]!;
const instance = await DuckDBInstance.create(':memory:');
const db = await instance.connect();
await db.run(`ATTACH '${database}' AS w (READ_ONLY)`);
const cols = `"entity_id", "horizon", "segment", "p1","p2","p3","p4","p5","p6","p7","p8","label","as_of"`;
for (const v of ['v1', 'v2']) {
  const t = performance.now();
  if (mode === 'literal') await db.run(`COPY (SELECT ${cols} FROM w.model_parameters WHERE version = '${v}') TO '/tmp/x-${v}.parquet' (FORMAT parquet, COMPRESSION lz4_raw)`);
  else { const p = await db.prepare(`COPY (SELECT ${cols} FROM w.model_parameters WHERE version = $version) TO '/tmp/x-${v}.parquet' (FORMAT parquet, COMPRESSION lz4_raw)`); p.bind({version: v}); await p.runAndReadAll(); }
  console.log(mode, v, Math.round(performance.now() - t));
}
