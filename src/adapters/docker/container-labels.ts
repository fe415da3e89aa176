/**
 * The labels every mcp-warden container carries (docs/docker.md, "What mcp-warden asks the engine
 * for"). Leftovers are always selected by these labels, never by container names.
 */
export const LABEL_MANAGED = 'mcp-warden.managed';
export const LABEL_INSTANCE = 'mcp-warden.instance';
export const LABEL_SERVER = 'mcp-warden.server';
export const LABEL_OWNER = 'mcp-warden.owner';
/** Unique per startContainer call; what makes a container findable when its id is unknown. */
export const LABEL_LAUNCH = 'mcp-warden.launch';
