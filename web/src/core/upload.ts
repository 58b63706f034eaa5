// upload posts an encrypted attachment with XMLHttpRequest, which reports
// upload progress (fetch does not). The core calls it with the blob it
// encrypted; the body is ciphertext only.
export function upload(
  url: string,
  headers: Record<string, string>,
  body: Uint8Array,
  progress: (done: number, total: number) => void,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', url);
    for (const [k, v] of Object.entries(headers)) if (v) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (e) => progress(e.loaded, e.lengthComputable ? e.total : body.length);
    xhr.onload = () => {
      progress(body.length, body.length);
      resolve({ status: xhr.status, body: xhr.responseText });
    };
    xhr.onerror = () => reject(new Error('network error while uploading'));
    xhr.onabort = () => reject(new Error('upload aborted'));
    xhr.send(body as Uint8Array<ArrayBuffer>);
  });
}
