// Every connection of the schema as a Relay paginated fragment that pages both ways (`@connection` with `first`,
// `after`, `last` and `before`): relay-compiler marks each "bidirectional", so that `usePaginationFragment`'s
// `loadNext` and `loadPrevious` both work. tests/it/relay.rs compiles it with the operations of queries/.
import { graphql } from "react-relay";

export const stakeholders = graphql`
  fragment RelayPaging_stakeholders on Query
  @refetchable(queryName: "RelayPagingStakeholdersQuery")
  @argumentDefinitions(
    first: { type: "Int" }
    after: { type: "String" }
    last: { type: "Int", defaultValue: 10 }
    before: { type: "String" }
  ) {
    stakeholders(first: $first, after: $after, last: $last, before: $before) @connection(key: "RelayPaging_stakeholders_stakeholders") {
      edges { node { id name } }
    }
  }
`;

export const graphRelationships = graphql`
  fragment RelayPaging_graphRelationships on Query
  @refetchable(queryName: "RelayPagingGraphRelationshipsQuery")
  @argumentDefinitions(
    first: { type: "Int" }
    after: { type: "String" }
    last: { type: "Int", defaultValue: 10 }
    before: { type: "String" }
  ) {
    relationships(first: $first, after: $after, last: $last, before: $before) @connection(key: "RelayPaging_graphRelationships_relationships") {
      edges { node { id } }
    }
  }
`;

export const programs = graphql`
  fragment RelayPaging_programs on Query
  @refetchable(queryName: "RelayPagingProgramsQuery")
  @argumentDefinitions(
    first: { type: "Int" }
    after: { type: "String" }
    last: { type: "Int", defaultValue: 10 }
    before: { type: "String" }
  ) {
    programs(first: $first, after: $after, last: $last, before: $before) @connection(key: "RelayPaging_programs_programs") {
      edges { node { id } }
    }
  }
`;

export const changes = graphql`
  fragment RelayPaging_changes on Query
  @refetchable(queryName: "RelayPagingChangesQuery")
  @argumentDefinitions(
    first: { type: "Int" }
    after: { type: "String" }
    last: { type: "Int", defaultValue: 10 }
    before: { type: "String" }
  ) {
    changes(first: $first, after: $after, last: $last, before: $before) @connection(key: "RelayPaging_changes_changes") {
      edges { node { cursor kind } }
    }
  }
`;

export const relationships = graphql`
  fragment RelayPaging_relationships on Employee
  @refetchable(queryName: "RelayPagingRelationshipsQuery")
  @argumentDefinitions(
    first: { type: "Int" }
    after: { type: "String" }
    last: { type: "Int", defaultValue: 10 }
    before: { type: "String" }
  ) {
    relationships(first: $first, after: $after, last: $last, before: $before) @connection(key: "RelayPaging_relationships_relationships") {
      edges { node { id } }
    }
  }
`;

export const managedCustomers = graphql`
  fragment RelayPaging_managedCustomers on Employee
  @refetchable(queryName: "RelayPagingManagedCustomersQuery")
  @argumentDefinitions(
    first: { type: "Int" }
    after: { type: "String" }
    last: { type: "Int", defaultValue: 10 }
    before: { type: "String" }
  ) {
    managedCustomers(first: $first, after: $after, last: $last, before: $before) @connection(key: "RelayPaging_managedCustomers_managedCustomers") {
      edges { node { id } }
    }
  }
`;

export const memberships = graphql`
  fragment RelayPaging_memberships on Customer
  @refetchable(queryName: "RelayPagingMembershipsQuery")
  @argumentDefinitions(
    first: { type: "Int" }
    after: { type: "String" }
    last: { type: "Int", defaultValue: 10 }
    before: { type: "String" }
  ) {
    programs(first: $first, after: $after, last: $last, before: $before) @connection(key: "RelayPaging_memberships_programs") {
      edges { node { joined } }
    }
  }
`;

export const interactions = graphql`
  fragment RelayPaging_interactions on Relationship
  @refetchable(queryName: "RelayPagingInteractionsQuery")
  @argumentDefinitions(
    first: { type: "Int" }
    after: { type: "String" }
    last: { type: "Int", defaultValue: 10 }
    before: { type: "String" }
  ) {
    interactions(first: $first, after: $after, last: $last, before: $before) @connection(key: "RelayPaging_interactions_interactions") {
      edges { node { id } }
    }
  }
`;
