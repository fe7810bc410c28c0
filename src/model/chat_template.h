#pragma once
// Chat prompt formatting, identical to llama.cpp's llm_chat_detect_template +
// llm_chat_apply_template (src/llama-chat.cpp) for the templates this project supports.
// This is not a Jinja engine: like llama.cpp, the GGUF template text is only inspected for
// markers to pick a known format.
#include <string>
#include <string_view>
#include <vector>

namespace cvq {

enum class ChatTemplate {
  ChatML,  // <|im_start|>role\ncontent<|im_end|>\n
  Llama3,  // <|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>
  Llama2,  // [INST] ... [/INST] (llama.cpp "llama2"; see render_chat_from_source for its variants)
  None,    // not recognised / not supported
};

struct ChatMessage {
  std::string role, content;
};

// Classifies a GGUF tokenizer.chat_template (Jinja source) the way llama.cpp does; also accepts
// llama.cpp's template names ("chatml", "llama3", "llama2"). Templates llama.cpp maps to some other
// format (Phi-3, Zephyr, Mistral, Gemma, SmolVLM, ...) give None.
ChatTemplate detect_chat_template(std::string_view jinja_source);

// The prompt text llama.cpp produces. add_generation_prompt opens an assistant turn (ChatML and
// Llama3; llama.cpp's Llama2 format has none). Throws Error for ChatTemplate::None.
std::string render_chat(ChatTemplate tmpl, const std::vector<ChatMessage>& msgs, bool add_generation_prompt);

// Detects from the Jinja source and renders, including llama.cpp's LLaMA-2 variants (system
// message support, BOS inside the history, stripped contents) that the enum does not distinguish.
// Throws Error when the template is not one of the supported formats.
std::string render_chat_from_source(std::string_view jinja_source, const std::vector<ChatMessage>& msgs,
                                    bool add_generation_prompt);

const char* chat_template_name(ChatTemplate tmpl);  // "chatml", "llama3", "llama2", "none"

}  // namespace cvq
