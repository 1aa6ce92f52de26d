// llama-server's POST /slots/{id}?action=save|restore|erase: a slot's prompt cache to a file in the
// --slot-save-path directory and back (Llama.slots). File names are plain names inside that
// directory; anything else is a 400 before any file is touched.
import { lstat } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { Llama } from "../completion/llama.js";
import { LlamaError } from "../errors.js";
import type { Route } from "./http.js";
import { sendJson } from "./http.js";
import { ApiError, badRequest } from "./requests.js";
import { slotAction } from "./utility-requests.js";

/** The file `filename` names in `dir`, checked to be a regular file when it exists (or to exist, with `mustExist`). */
async function slotFile(dir: string, filename: string, mustExist: boolean): Promise<string> {
  const path = join(dir, filename);
  // slotAction already refused separators and "..": this only guards against a mistake there.
  if (resolve(path, "..") !== dir) throw badRequest("filename must be a plain file name inside the slot directory", "filename", "invalid_filename");
  const found = await lstat(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return null;
    throw err;
  });
  if (found === null && mustExist) throw badRequest(`the slot file ${JSON.stringify(filename)} does not exist`, "filename", "file_not_found");
  if (found !== null && !found.isFile()) throw badRequest(`${JSON.stringify(filename)} in the slot directory is not a regular file`, "filename", "invalid_filename");
  return path;
}

/**
 * The route of POST /slots/{idText}; `dir` is the --slot-save-path directory (null: slot actions
 * are off, 501 as llama-server).
 */
export function slotRoute(llama: Llama, dir: string | null, idText: string, action: string | null): Route {
  return {
    method: "POST",
    private: true,
    generates: false,
    // erase takes no body.
    emptyBody: true,
    handle: async (body, res) => {
      if (dir === null) throw new ApiError(501, "this server does not support slot actions: start it with --slot-save-path DIR", "not_supported_error", "not_supported");
      const request = slotAction(idText, action, body, llama.slots.count);
      if (request.action === "erase") {
        sendJson(res, 200, { id_slot: request.id, n_erased: await llama.slots.erase(request.id) });
        return;
      }
      const path = await slotFile(dir, request.filename, request.action === "restore");
      if (request.action === "save") {
        const saved = await llama.slots.save(request.id, path);
        sendJson(res, 200, { id_slot: request.id, filename: request.filename, n_saved: saved.tokens, n_written: saved.bytes, timings: { save_ms: saved.ms } });
        return;
      }
      try {
        const restored = await llama.slots.restore(request.id, path);
        sendJson(res, 200, { id_slot: request.id, filename: request.filename, n_restored: restored.tokens, n_read: restored.bytes, timings: { restore_ms: restored.ms } });
      } catch (err) {
        if (err instanceof LlamaError && err.code === "STATE_FAILED") throw badRequest(`unable to restore slot ${request.id}: ${err.message}`, "filename", "invalid_slot_file");
        throw err;
      }
    },
  };
}
