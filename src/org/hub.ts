import { Server } from "partyserver";
export class OrgHub extends Server<Env> {
  static override options = { hibernate: true };
}
