/** The Python snippet the "Copy OpenAI Python Snippet" command puts on the clipboard. */

export function openaiSnippet(baseUrl: string, token: string, model: string | null): string {
  // Without a token (password or no auth) the key is the user's to fill in.
  const apiKey = token || '<your Jupyter token>';
  return [
    'from openai import OpenAI',
    '',
    `client = OpenAI(base_url=${pyString(baseUrl)}, api_key=${pyString(apiKey)})`,
    'reply = client.chat.completions.create(',
    `    model=${pyString(model ?? '<model>')},`,
    '    messages=[{"role": "user", "content": "Hello!"}],',
    ')',
    'print(reply.choices[0].message.content)',
    ''
  ].join('\n');
}

/** A Python string literal; JSON's escaping is valid Python for these values. */
function pyString(value: string): string {
  return JSON.stringify(value);
}
