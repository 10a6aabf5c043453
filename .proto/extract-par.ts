import {DuckDBInstance} from '@duckdb/node-api';
const database = process.argv[2]!;
const mode = process.argv[3]!;
const instance = await DuckDBInstance.create(':memory:');
const cols = `"entity_id", "horizon", "segment", "p1","p2","p3","p4","p5","p6","p7","p8","label","as_of"`;
const one = async (v: string) => {
  const db = await instance.connect();
  const alias = 'w' + v;
  await db.run(`ATTACH '${database}' AS ${alias} (READ_ONLY)`);
  const t = performance.now();
  await db.run(`COPY (SELECT ${cols} FROM ${alias}.model_parameters WHERE version = '${v}') TO '/tmp/x-${v}.parquet' (FORMAT parquet, COMPRESSION lz4_raw)`);
  return Math.round(performance.now() - t);
};
const t = performance.now();
if (mode === 'par') console.log(await Promise.all([one('v1'), one('v2')]));
else console.log(await one('v1'), await one('v2'));
console.log(mode, Math.round(performance.now() - t));
