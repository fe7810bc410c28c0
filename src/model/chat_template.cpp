// Chat templates as llama.cpp's llama-chat.cpp detects and applies them (see chat_template.h).
#include "model/chat_template.h"

#include "core/error.h"

namespace cvq {

namespace {

// llama.cpp's finer classification; everything it would format some other way is kOther.
enum class Kind { kChatML, kLlama2, kLlama2Sys, kLlama2SysBos, kLlama2SysStrip, kLlama3, kOther, kUnknown };

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && is_space(s[b])) ++b;
  while (e > b && is_space(s[e - 1])) --e;
  return s.substr(b, e - b);
}

Kind detect_kind(std::string_view t) {
  if (t == "chatml") return Kind::kChatML;
  if (t == "llama2") return Kind::kLlama2;
  if (t == "llama2-sys") return Kind::kLlama2Sys;
  if (t == "llama2-sys-bos") return Kind::kLlama2SysBos;
  if (t == "llama2-sys-strip") return Kind::kLlama2SysStrip;
  if (t == "llama3") return Kind::kLlama3;

  auto has = [t](std::string_view s) { return t.find(s) != std::string_view::npos; };
  // The order below is llama.cpp's: earlier markers win.
  if (has("<|im_start|>")) {
    if (has("<|im_sep|>") || has("<end_of_utterance>")) return Kind::kOther;  // Phi-4, SmolVLM
    return Kind::kChatML;
  }
  if (t.rfind("mistral", 0) == 0 || has("[INST]")) {
    if (has("[SYSTEM_PROMPT]")) return Kind::kOther;                                          // Mistral v7
    if (has("' [INST] ' + system_message") || has("[AVAILABLE_TOOLS]")) return Kind::kOther;  // Mistral v1/v3
    if (has("content.strip()")) return Kind::kLlama2SysStrip;
    if (has("bos_token + '[INST]")) return Kind::kLlama2SysBos;
    if (has("<<SYS>>")) return Kind::kLlama2Sys;
    return Kind::kLlama2;
  }
  if ((has("<|assistant|>") && has("<|end|>")) || has("[gMASK]<sop>") || (has("<|assistant|>") && has("<|user|>")) ||
      (has("<|{{ item['role'] }}|>") && has("<|begin_of_image|>")) || (has("<|user|>") && has("<|endoftext|>")) ||
      has("bos_token + message['role']") || has("<start_of_turn>") || has("'\\n\\nAssistant: ' + eos_token") ||
      has("GPT4 Correct ") || (has("USER: ") && has("ASSISTANT: ")) || (has("### Instruction:") && has("<|EOT|>")) ||
      (has("<|START_OF_TURN_TOKEN|>") && has("<|USER_TOKEN|>"))) {
    return Kind::kOther;
  }
  if (has("<|start_header_id|>") && has("<|end_header_id|>")) return Kind::kLlama3;
  return Kind::kUnknown;
}

std::string render_kind(Kind kind, const std::vector<ChatMessage>& msgs, bool add_ass) {
  std::string out;
  switch (kind) {
    case Kind::kChatML:
      for (const auto& m : msgs) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
      if (add_ass) out += "<|im_start|>assistant\n";
      return out;
    case Kind::kLlama3:
      for (const auto& m : msgs) {
        out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + trim(m.content) + "<|eot_id|>";
      }
      if (add_ass) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
      return out;
    case Kind::kLlama2:
    case Kind::kLlama2Sys:
    case Kind::kLlama2SysBos:
    case Kind::kLlama2SysStrip: {
      const bool system_ok = kind != Kind::kLlama2;
      const bool bos_inside = kind == Kind::kLlama2SysBos;
      const bool strip = kind == Kind::kLlama2SysStrip;
      bool inside_turn = true;  // no BOS at the very beginning
      out += "[INST] ";
      for (const auto& m : msgs) {
        const std::string content = strip ? trim(m.content) : m.content;
        if (!inside_turn) {
          inside_turn = true;
          out += bos_inside ? "<s>[INST] " : "[INST] ";
        }
        if (m.role == "system") {
          if (system_ok) {
            out += "<<SYS>>\n" + content + "\n<</SYS>>\n\n";
          } else {
            out += content + "\n";
          }
        } else if (m.role == "user") {
          out += content + " [/INST]";
        } else {
          out += content + "</s>";
          inside_turn = false;
        }
      }
      return out;
    }
    case Kind::kOther:
    case Kind::kUnknown:
      break;
  }
  throw Error("chat template not supported (supported: chatml, llama3, llama2)");
}

}  // namespace

ChatTemplate detect_chat_template(std::string_view jinja_source) {
  switch (detect_kind(jinja_source)) {
    case Kind::kChatML:
      return ChatTemplate::ChatML;
    case Kind::kLlama3:
      return ChatTemplate::Llama3;
    case Kind::kLlama2:
    case Kind::kLlama2Sys:
    case Kind::kLlama2SysBos:
    case Kind::kLlama2SysStrip:
      return ChatTemplate::Llama2;
    case Kind::kOther:
    case Kind::kUnknown:
      break;
  }
  return ChatTemplate::None;
}

std::string render_chat(ChatTemplate tmpl, const std::vector<ChatMessage>& msgs, bool add_generation_prompt) {
  switch (tmpl) {
    case ChatTemplate::ChatML:
      return render_kind(Kind::kChatML, msgs, add_generation_prompt);
    case ChatTemplate::Llama3:
      return render_kind(Kind::kLlama3, msgs, add_generation_prompt);
    case ChatTemplate::Llama2:
      return render_kind(Kind::kLlama2, msgs, add_generation_prompt);
    case ChatTemplate::None:
      break;
  }
  throw Error(
      "cannot render a chat prompt: the model's chat template is not recognised "
      "(supported: chatml, llama3, llama2); name the format with --chat-template chatml|llama3|llama2");
}

std::string render_chat_from_source(std::string_view jinja_source, const std::vector<ChatMessage>& msgs,
                                    bool add_generation_prompt) {
  const Kind kind = detect_kind(jinja_source);
  if (kind == Kind::kOther || kind == Kind::kUnknown) {
    throw Error(
        "cannot render a chat prompt: the model's chat template is not recognised "
        "(supported: chatml, llama3, llama2); name the format with --chat-template chatml|llama3|llama2");
  }
  return render_kind(kind, msgs, add_generation_prompt);
}

const char* chat_template_name(ChatTemplate tmpl) {
  switch (tmpl) {
    case ChatTemplate::ChatML:
      return "chatml";
    case ChatTemplate::Llama3:
      return "llama3";
    case ChatTemplate::Llama2:
      return "llama2";
    case ChatTemplate::None:
      return "none";
  }
  return "none";
}

}  // namespace cvq
