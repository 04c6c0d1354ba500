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
