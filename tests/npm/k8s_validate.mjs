// Validate Kubernetes objects with the JSON-schema validators that kubernetes-models and
// @kubernetes-models/prometheus-operator publish (compiled from the Kubernetes OpenAPI spec
// and from prometheus-operator's API types): required fields, types, enums, patterns such as
// Prometheus durations. Unknown fields are caught by the TypeScript half of the check
// (tests/k8s_support.py). Input (argv[2]): a JSON list of {where, module, model, object};
// output: a JSON list of {where, error}, empty when everything is valid.
import { readFileSync } from 'node:fs';

const items = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const problems = [];
for (const { where, module, model, object } of items) {
  try {
    const Model = (await import(module))[model];
    new Model(object).validate();
  } catch (err) {
    problems.push({ where, error: String(err && err.message ? err.message : err) });
  }
}
process.stdout.write(JSON.stringify(problems));
