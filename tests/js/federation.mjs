// Composes Stakegraph's subgraph SDL (the file named by the first argument, as `_service { sdl }` answered it)
// with tests/js/federation/surveys.graphql into a supergraph with the official @apollo/composition, and prints
// one JSON line: the composition errors, or what the supergraph's API schema says of the types both extend.
import { readFileSync } from "node:fs";
import { composeServices } from "@apollo/composition";
import { parse } from "graphql";

const stakegraph = readFileSync(process.argv[2], "utf8");
const surveys = readFileSync(new URL("./federation/surveys.graphql", import.meta.url), "utf8");
const result = composeServices([
  { name: "stakegraph", url: "http://stakegraph/graphql", typeDefs: parse(stakegraph) },
  { name: "surveys", url: "http://surveys/graphql", typeDefs: parse(surveys) },
]);
if (result.errors) {
  console.log(JSON.stringify({ errors: result.errors.map((error) => error.message) }));
  process.exit(0);
}
const api = result.schema.toAPISchema().toGraphQLJSSchema();
const fields = (name) => Object.keys(api.getType(name).getFields()).sort();
console.log(
  JSON.stringify({
    errors: [],
    hints: result.hints.length,
    stakeholder: fields("Stakeholder"),
    customer: fields("Customer"),
    relationship: fields("Relationship"),
    query: fields("Query"),
  }),
);
