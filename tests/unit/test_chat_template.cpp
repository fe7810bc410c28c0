// Chat templates: detection from Jinja sources and the exact text llama.cpp's
// llm_chat_apply_template produces (hand-worked expected strings).
#include <gtest/gtest.h>

#include <algorithm>

#include "core/error.h"
#include "model/chat_template.h"
#include "model/gguf.h"
#include "model/tokenizer.h"
#include "support/test_env.h"

namespace cvq {
namespace {

const std::vector<ChatMessage> kSysUser = {{"system", "You are a helpful assistant."}, {"user", "Hello!"}};

TEST(ChatTemplate, ChatMLSystemUserAndGenerationPrompt) {
  EXPECT_EQ(render_chat(ChatTemplate::ChatML, kSysUser, true),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\nHello!<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_EQ(render_chat(ChatTemplate::ChatML, {{"user", " keep spaces \n"}}, false),
            "<|im_start|>user\n keep spaces \n<|im_end|>\n");
  EXPECT_EQ(render_chat(ChatTemplate::ChatML, {}, true), "<|im_start|>assistant\n");
}

TEST(ChatTemplate, Llama3HeadersAndTrimmedContent) {
  const std::vector<ChatMessage> msgs = {
      {"system", "  Be brief.\n"}, {"user", "Hi\n"}, {"assistant", "Hello."}, {"user", "\tBye "}};
  EXPECT_EQ(render_chat(ChatTemplate::Llama3, msgs, true),
            "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(render_chat(ChatTemplate::Llama3, {{"user", "x"}}, false),
            "<|start_header_id|>user<|end_header_id|>\n\nx<|eot_id|>");
}

TEST(ChatTemplate, Llama2Variants) {
  const std::vector<ChatMessage> msgs = {{"system", "S"}, {"user", "U1"}, {"assistant", " A1 "}, {"user", "U2"}};
  // Plain "llama2": no <<SYS>> block, no generation prompt.
  EXPECT_EQ(render_chat(ChatTemplate::Llama2, msgs, true), "[INST] S\nU1 [/INST] A1 </s>[INST] U2 [/INST]");
  EXPECT_EQ(render_chat_from_source("{{ '<<SYS>>' }}[INST]", msgs, true),
            "[INST] <<SYS>>\nS\n<</SYS>>\n\nU1 [/INST] A1 </s>[INST] U2 [/INST]");
  EXPECT_EQ(render_chat_from_source("<<SYS>> {{ bos_token + '[INST] ' }}", msgs, true),
            "[INST] <<SYS>>\nS\n<</SYS>>\n\nU1 [/INST] A1 </s><s>[INST] U2 [/INST]");
  EXPECT_EQ(render_chat_from_source("[INST] <<SYS>> {{ message['content'].strip() }} content.strip()", msgs, true),
            "[INST] <<SYS>>\nS\n<</SYS>>\n\nU1 [/INST]A1</s>[INST] U2 [/INST]");
}

TEST(ChatTemplate, Detection) {
  const std::string smollm =
      "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
      "'<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' "
      "}}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
      "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
  EXPECT_EQ(detect_chat_template(smollm), ChatTemplate::ChatML);
  EXPECT_EQ(detect_chat_template("{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' }}"),
            ChatTemplate::Llama3);
  EXPECT_EQ(detect_chat_template("{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }} <<SYS>>"),
            ChatTemplate::Llama2);
  EXPECT_EQ(detect_chat_template("chatml"), ChatTemplate::ChatML);
  EXPECT_EQ(detect_chat_template("llama3"), ChatTemplate::Llama3);
  EXPECT_EQ(detect_chat_template("llama2"), ChatTemplate::Llama2);
  // Formats llama.cpp renders differently are not passed off as ours.
  EXPECT_EQ(detect_chat_template("<|im_start|>{{ role }}<|im_sep|>"), ChatTemplate::None);         // Phi-4
  EXPECT_EQ(detect_chat_template("<|im_start|>User:<end_of_utterance>"), ChatTemplate::None);      // SmolVLM
  EXPECT_EQ(detect_chat_template("[INST] [SYSTEM_PROMPT]"), ChatTemplate::None);                   // Mistral v7
  EXPECT_EQ(detect_chat_template("<|user|>\n{{ m }}<|end|>\n<|assistant|>"), ChatTemplate::None);  // Phi-3
  EXPECT_EQ(detect_chat_template("<start_of_turn>user"), ChatTemplate::None);                      // Gemma
  EXPECT_EQ(detect_chat_template(""), ChatTemplate::None);
  EXPECT_STREQ(chat_template_name(ChatTemplate::ChatML), "chatml");
}

TEST(ChatTemplate, UnsupportedIsAnError) {
  EXPECT_THROW(render_chat(ChatTemplate::None, kSysUser, true), Error);
  EXPECT_THROW(render_chat_from_source("<start_of_turn>", kSysUser, true), Error);
}

TEST(ChatTemplate, SmolLMModelTemplateTokenizes) {
  CVQ_NEED_FILE(model, test::model_path());
  GgufFile f(model);
  const std::string source = f.get_string("tokenizer.chat_template");
  ASSERT_EQ(detect_chat_template(source), ChatTemplate::ChatML);
  const Tokenizer tok(tokenizer_data_from_gguf(f));
  const std::string prompt = render_chat(detect_chat_template(source), kSysUser, true);
  const std::vector<int32_t> ids = tok.encode(prompt, tok.add_bos_default(), true);
  ASSERT_GE(ids.size(), 10u);
  EXPECT_EQ(ids.front(), 1);  // <|im_start|>
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 1), 3);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 2), 2);  // <|im_end|>
  EXPECT_EQ(tok.decode(ids), prompt);
}

}  // namespace
}  // namespace cvq
