import { namespacedUri, type RpcResult } from '@portcullis/core';

/**
 * Resource URIs of a prefixed upstream are rewritten wherever they appear in what an upstream
 * returns, so the agent only ever sees gateway URIs and can hand any of them back. Unprefixed
 * upstreams pass through untouched (no copy on the hot path).
 */

type Json = unknown;

function isObject(value: Json): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A listed resource (`uri`) or resource template (`uriTemplate`). */
export function rewriteListedUris(item: RpcResult, prefix: string | undefined): RpcResult {
  if (prefix === undefined) return item;
  const copy: RpcResult = { ...item };
  if (typeof copy.uri === 'string') copy.uri = namespacedUri(prefix, copy.uri);
  if (typeof copy.uriTemplate === 'string') copy.uriTemplate = namespacedUri(prefix, copy.uriTemplate);
  return copy;
}

/** One content block: `resource_link` carries `uri`, an embedded `resource` carries `resource.uri`. */
function rewriteContentBlock(block: Json, prefix: string): Json {
  if (!isObject(block)) return block;
  if (block.type === 'resource_link' && typeof block.uri === 'string') {
    return { ...block, uri: namespacedUri(prefix, block.uri) };
  }
  if (block.type === 'resource' && isObject(block.resource) && typeof block.resource.uri === 'string') {
    return { ...block, resource: { ...block.resource, uri: namespacedUri(prefix, block.resource.uri) } };
  }
  return block;
}

function rewriteContent(content: Json, prefix: string): Json {
  if (Array.isArray(content)) return content.map((block) => rewriteContentBlock(block, prefix));
  return rewriteContentBlock(content, prefix);
}

function rewriteMessages(messages: Json, prefix: string): Json {
  if (!Array.isArray(messages)) return messages;
  return messages.map((message) =>
    isObject(message) && 'content' in message
      ? { ...message, content: rewriteContent(message.content, prefix) }
      : message,
  );
}

/** The result of a request routed to one upstream, as the agent will see it. */
export function rewriteResultUris(method: string, result: RpcResult, prefix: string | undefined): RpcResult {
  if (prefix === undefined) return result;
  switch (method) {
    case 'tools/call':
      return 'content' in result ? { ...result, content: rewriteContent(result.content, prefix) } : result;
    case 'resources/read':
      return Array.isArray(result.contents)
        ? {
            ...result,
            contents: result.contents.map((entry: Json) =>
              isObject(entry) && typeof entry.uri === 'string'
                ? { ...entry, uri: namespacedUri(prefix, entry.uri) }
                : entry,
            ),
          }
        : result;
    case 'prompts/get':
      return 'messages' in result ? { ...result, messages: rewriteMessages(result.messages, prefix) } : result;
    default:
      return result;
  }
}

/** Params of a request or notification an upstream sends towards the agent. */
export function rewriteOutboundParams(method: string, params: RpcResult, prefix: string | undefined): RpcResult {
  if (prefix === undefined) return params;
  switch (method) {
    case 'sampling/createMessage':
      return 'messages' in params ? { ...params, messages: rewriteMessages(params.messages, prefix) } : params;
    case 'notifications/resources/updated':
      return typeof params.uri === 'string' ? { ...params, uri: namespacedUri(prefix, params.uri) } : params;
    default:
      return params;
  }
}
