// Chat templates by llama.cpp's built-in formatter (llama_chat_apply_template).
import { native } from "./binding.js";

/**
 * The prompt that `template` (a built-in name or a template llama.cpp recognizes) makes of the
 * messages, with the opening of an assistant turn when `addAssistant`; null for an unknown template.
 */
export function applyChatTemplate(template: string, roles: string[], contents: string[], addAssistant: boolean): string | null {
  return native.applyChatTemplate(template, roles, contents, addAssistant);
}

/** The names of llama.cpp's built-in chat templates. */
export function builtinChatTemplates(): string[] {
  return native.builtinChatTemplates();
}
