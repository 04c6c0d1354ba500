import { z } from "zod";

/**
 * What the Worker tells a conversation object about the conversation it serves, resolved from D1
 * after authentication. The object stores it on first use and refuses a call whose org differs
 * (defence in depth behind the Worker's org-scoped query).
 */
export interface ConversationRef {
  id: string;
  org_id: string;
  channel_id: string;
  end_user: { id: string; external_id: string; display_name: string | null };
}

/**
 * The conversation's channel settings as the Worker's lookup read them from D1 at `read_at` (epoch
 * ms), handed to the room with a socket (header `x-parley-channel`, which only the Worker sets).
 */
export const ChannelSettings = z.object({ typing_preview: z.boolean(), read_at: z.number().int().nonnegative() });
export type ChannelSettings = z.infer<typeof ChannelSettings>;

/** The header's settings, or null when absent or malformed (the room then reads D1 itself). */
export function parseChannelSettings(header: string | null): ChannelSettings | null {
  if (header === null) return null;
  try {
    const parsed = ChannelSettings.safeParse(JSON.parse(header));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}
