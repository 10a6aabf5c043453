/** The JSON Schema of pipeline.yaml (and of settings files), for editors: pipeline.schema.json. */
import {z} from 'zod';
import {settingsSchema, taskName, taskSchema} from './schema.js';

/** The schema text, as committed in pipeline.schema.json (a test keeps the two equal). */
export function pipelineJsonSchema(): string {
  const editorSchema = z
    .strictObject({
      settings: settingsSchema.optional().describe('Defaults of every setting; --config files, PIPELINE_* variables and --set override them.'),
      tasks: z.record(taskName, taskSchema).describe('The tasks, by name.'),
    })
    .describe('pipeline.yaml: the version-validation pipeline.');
  const schema = z.toJSONSchema(editorSchema, {io: 'input', unrepresentable: 'any'});
  return JSON.stringify({...schema, title: 'pipeline.yaml'}, null, 2) + '\n';
}
