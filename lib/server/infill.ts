// llama-server's /infill prompt: other files' text (repo-level FIM), then the model's FIM layout
// <fim_prefix> prefix prompt <fim_suffix> suffix <fim_middle>, laid out and cut as llama-server's
// format_prompt_infill does: prefix and suffix to one batch, 3:1. The extra text gets what the
// context has left beside them and the tokens to generate (n_predict, else a quarter of the
// context), its end kept; llama-server's budget (the context less a batch) leaves none here, where
// the batch is as large as the context by default.
import type { Llama } from "../completion/llama.js";
import { LOAD_DEFAULTS } from "../completion/options.js";
import { ApiError } from "./requests.js";
import type { InfillRequest, MixedContent } from "./utility-requests.js";

/** 501 in llama-server's words when the model has no FIM tokens. */
export function checkInfill(llama: Llama): void {
  const { fimPre, fimSuf, fimMid } = llama.model.info;
  const missing = [fimPre < 0 && "prefix", fimSuf < 0 && "suffix", fimMid < 0 && "middle"].filter((name) => name !== false);
  if (missing.length > 0) {
    const tokens = `${missing.join(", ")} token${missing.length > 1 ? "s" : ""}`;
    throw new ApiError(501, `infill is not supported by this model: it lacks the FIM ${tokens}`, "not_supported_error", "not_supported");
  }
}

/** The prompt's tokens, as llama-server lays them out for the request. */
export function infillPrompt(llama: Llama, request: InfillRequest): number[] {
  const { fimPre, fimSuf, fimMid, fimRep, fimSep, bos, addBos } = llama.model.info;
  const text = (value: string, special = false) => llama.tokenize(value, { addBos: false, special });
  const mixed = (content: MixedContent) => (typeof content === "string" ? text(content) : content.flatMap((part) => (typeof part === "string" ? text(part) : [part])));

  const extra: number[] = [];
  if (fimRep >= 0) extra.push(fimRep, ...text("myproject\n"));
  for (const chunk of request.extra) {
    extra.push(...(fimSep >= 0 ? [fimSep, ...text(`${chunk.filename}\n`)] : text("\n\n--- snippet ---\n\n")), ...text(chunk.text));
  }
  if (fimSep >= 0) extra.push(fimSep, ...text("filename\n"));

  const nBatch = llama.options.nBatch ?? LOAD_DEFAULTS.nBatch;
  const quarter = Math.floor(nBatch / 4);
  const prompt = text(request.prompt, true);
  const prefix = mixed(request.prefix);
  const suffix = mixed(request.suffix);
  const prefixTake = Math.min(prefix.length, 3 * quarter);
  const suffixTake = Math.min(suffix.length, Math.max(0, quarter - (2 + prompt.length)));
  const core = [
    ...(addBos && bos >= 0 ? [bos] : []),
    fimPre,
    ...prefix.slice(prefix.length - prefixTake),
    ...prompt,
    fimSuf,
    ...suffix.slice(0, suffixTake),
    fimMid,
  ];
  const reserve = request.nPredict ?? Math.floor(llama.nCtx / 4);
  const extraTake = Math.min(Math.max(0, llama.nCtx - core.length - reserve), extra.length);
  return [...extra.slice(extra.length - extraTake), ...core];
}
