// Uses the types graphql-codegen made from the live schema; `tsc --noEmit` checks it.
import type {
  CancelMutation,
  CreationsPageQuery,
  MeQuery,
  RegisterMutationVariables,
  ToolsQuery,
  WriteEventsSubscription,
  WriteEventsSubscriptionVariables,
} from "./operations";
import type { CreationEvent, CreationStatus, Query } from "./schema-types";

type WriteEvent = WriteEventsSubscription["write"];

/** Signed out, `me` is null rather than an error: both outputs must allow it. */
export const signedOut: MeQuery = { me: null };
export const nobody: Query["me"] = null;

/** Every event is an entity: a normalised cache keys it by `__typename` and `id`. */
export const eventId = (event: CreationEvent): string => event.id;
export const cacheKey = (event: WriteEvent): string => `${event.__typename}:${event.id}`;

export const signUp: RegisterMutationVariables = {
  input: { email: "reader@example.com", password: "correct horse battery" },
};

export const story: WriteEventsSubscriptionVariables = {
  input: { prompt: "a lighthouse", maxTokens: 64 },
};

export function toolNames(data: ToolsQuery): string[] {
  return data.tools.map((tool) => tool.name);
}

export function nextCursor(data: CreationsPageQuery): string | null {
  // null (with an error) when the caller may not list creations
  if (!data.creations) return null;
  const { hasNextPage, endCursor } = data.creations.pageInfo;
  return hasNextPage ? (endCursor ?? null) : null;
}

/** The text so far and, once the terminal event came, the creation's final status. */
export function render(events: readonly WriteEvent[]): { text: string; final: CreationStatus | null } {
  let text = "";
  let final: CreationStatus | null = null;
  for (const event of events) {
    switch (event.__typename) {
      case "TokenDelta":
        text += event.text;
        break;
      case "CreationCompleted":
      case "CreationFailed":
      case "CreationCancelled":
        // every terminal event carries the creation as it ended
        final = event.creation.status;
        text = event.creation.output;
        break;
      default:
        break;
    }
  }
  return { text, final };
}

export function cancelled(result: CancelMutation): CreationStatus | null {
  const answer = result.cancelCreation;
  return answer.__typename === "Creation" ? answer.status : null;
}
