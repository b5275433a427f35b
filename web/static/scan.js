// The camera scan of a code (the `scan_button` macro in _scan.html), for every desk that reads
// one (a pickup code's digits; a crate's QR or code as it is, with `raw`): where the browser has BarcodeDetector and a camera, the button is shown; a code read
// fills the field, marks the form's method field "scanned" and submits the form. Where it has
// not, the button stays hidden (the `hidden` attribute, which app.css makes win over any
// display rule): never a button that does nothing. Typing always works.

const FORMATS = ["qr_code", "code_128", "ean_13", "itf"];

export function canScan(win = window) {
  return "BarcodeDetector" in win && !!(win.navigator.mediaDevices && win.navigator.mediaDevices.getUserMedia);
}

export function attachScanner(button, { input, video, method, onCode, raw = false } = {}) {
  if (!button || !input || !video || !canScan()) {
    return false;
  }
  button.hidden = false;
  button.addEventListener("click", async () => {
    let stream;
    try {
      const detector = new window.BarcodeDetector({ formats: FORMATS });
      stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } });
      video.srcObject = stream;
      video.hidden = false;
      await video.play();
      const tick = async () => {
        let digits = "";
        try {
          const codes = await detector.detect(video);
          const value = codes.length ? codes[0].rawValue : "";
          // a pickup code is its digits; a crate's QR or code is read as it is (raw)
          digits = raw ? value.trim() : value.replace(/\D/g, "");
        } catch (err) {
          digits = "";
        }
        if (!digits) {
          window.requestAnimationFrame(tick);
          return;
        }
        stream.getTracks().forEach((t) => t.stop());
        video.hidden = true;
        input.value = digits;
        if (method) {
          method.value = "scanned";
        }
        (onCode || ((field) => field.form.submit()))(input, digits);
      };
      tick();
    } catch (err) {
      // No camera, or permission refused: this browser cannot scan after all.
      if (stream) {
        stream.getTracks().forEach((t) => t.stop());
      }
      video.hidden = true;
      button.hidden = true;
      input.focus();
    }
  });
  return true;
}

for (const button of document.querySelectorAll("button[data-scan-for]")) {
  if (button.dataset.scanReady) {
    continue; // the module runs once per page, however many macros include it
  }
  button.dataset.scanReady = "1";
  const id = button.dataset.scanFor;
  attachScanner(button, {
    input: document.getElementById(id),
    video: document.querySelector(`video[data-scan-video="${id}"]`),
    method: button.dataset.scanMethod ? document.getElementById(button.dataset.scanMethod) : null,
    raw: button.dataset.scanRaw === "1",
  });
}
