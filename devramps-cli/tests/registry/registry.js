// A tiny step registry speaking the DevRamps step protocol (reference §9.3), without the SDK:
// SYNTHESIZE-METADATA lists two step types with the JSON Schemas of their params. Any other job
// fails as the SDK's registry does for an unknown step.
const fs = require('fs');

const args = process.argv.slice(2);
const arg = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const output = arg('--output') || '/tmp/step-output.json';

const metadata = [
  {
    name: 'Deploy script',
    stepType: 'CUSTOM:SCRIPT:DEPLOY',
    shortDescription: 'Runs a deploy script',
    paramsJsonSchema: {
      $schema: 'http://json-schema.org/draft-07/schema#',
      type: 'object',
      properties: {
        script: { type: 'string' },
        replicas: { type: 'integer', minimum: 1 },
        environment: { enum: ['dev', 'staging', 'prod'] },
        options: {
          type: 'object',
          properties: { dry_run: { type: 'boolean' } },
          additionalProperties: false,
        },
      },
      required: ['script'],
      additionalProperties: false,
    },
    documentationUrl: 'https://example.invalid/steps/script-deploy',
  },
  {
    name: 'CDN invalidation',
    stepType: 'cdn-invalidate',
    paramsJsonSchema: {
      type: 'object',
      properties: {
        distribution_id: { type: 'string', pattern: '^E[A-Z0-9]+$' },
        paths: { type: 'array', items: { type: 'string' }, minItems: 1 },
      },
      required: ['distribution_id', 'paths'],
    },
  },
];

let result;
try {
  const input = JSON.parse(arg('--input'));
  if (input.job === 'SYNTHESIZE-METADATA') {
    result = { status: 'SUCCESS', data: { metadata } };
  } else {
    result = { status: 'FAILED', error: `step type ${input.type} is not implemented`, errorCode: 'STEP_NOT_FOUND' };
  }
} catch (e) {
  result = { status: 'FAILED', error: String(e), errorCode: 'REGISTRY_ERROR' };
}
fs.writeFileSync(output, JSON.stringify(result, null, 2));
