import { Server } from "partyserver";
export class ConversationRoom extends Server<Env> {
  static override options = { hibernate: true };
}
