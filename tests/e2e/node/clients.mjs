// Drives a running `mcli serve` with the official openai and ollama npm clients and prints what
// they got as one JSON object (checked by tests/e2e/test_server_node.py).
// Usage: node clients.mjs BASE_URL DECODER_NAME ENCODER_NAME
import OpenAI from 'openai';
import { Ollama } from 'ollama';

const [base, gpt, enc] = process.argv.slice(2);
const out = {};
const openai = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'unused', maxRetries: 0 });
const chatReq = { model: gpt, messages: [{ role: 'user', content: 'hello there' }], max_tokens: 5, temperature: 0 };

const chat = await openai.chat.completions.create(chatReq);
out.chat = chat.choices[0].message.content;
out.chat_usage = chat.usage;
let streamed = '';
for await (const chunk of await openai.chat.completions.create({ ...chatReq, stream: true })) {
  streamed += chunk.choices[0]?.delta?.content ?? '';
}
out.chat_stream = streamed;
const completion = await openai.completions.create({ model: gpt, prompt: 'the cat', max_tokens: 4, temperature: 0 });
out.completion = completion.choices[0].text;
// The openai client asks for base64 by default and decodes the little-endian float32 bytes itself.
const emb = await openai.embeddings.create({ model: enc, input: ['the cat sat on the mat.'] });
out.openai_embedding = emb.data[0].embedding;
out.models = (await openai.models.list()).data.map((m) => m.id);

const ollama = new Ollama({ host: base });
const genReq = { model: gpt, prompt: 'the cat', options: { temperature: 0, num_predict: 6 } };
const gen = await ollama.generate(genReq);
out.generate = gen.response;
out.generate_eval_count = gen.eval_count;
let gtext = '';
for await (const part of await ollama.generate({ ...genReq, stream: true })) gtext += part.response;
out.generate_stream = gtext;
out.ollama_embedding = (await ollama.embed({ model: enc, input: 'the cat sat on the mat.' })).embeddings[0];
out.tags = (await ollama.list()).models.map((m) => m.name);
console.log(JSON.stringify(out));
