// Camera scan of a pickup code or a crate's QR code with the browser's BarcodeDetector, where
// supported.
// Typing the code always works; this only fills the same field and submits the same form.
(function () {
  var button = document.getElementById("scan-button");
  var video = document.getElementById("scan-video");
  var input = document.getElementById("code");
  var method = document.getElementById("method");
  if (!button || !video || !input || !("BarcodeDetector" in window) || !navigator.mediaDevices) {
    return;
  }
  button.hidden = false;
  button.addEventListener("click", function () {
    var detector = new window.BarcodeDetector({ formats: ["qr_code", "code_128", "ean_13", "itf"] });
    navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } }).then(function (stream) {
      video.srcObject = stream;
      video.style.display = "block";
      video.play();
      var tick = function () {
        detector.detect(video).then(function (codes) {
          // a crate's QR code (data-scan="raw") is kept whole; a pickup code keeps its digits
          var raw = codes.length ? codes[0].rawValue : "";
          var digits = input.dataset.scan === "raw" ? raw.trim() : raw.replace(/\D/g, "");
          if (digits) {
            stream.getTracks().forEach(function (t) { t.stop(); });
            input.value = digits;
            if (method) { method.value = "scanned"; }
            input.form.submit();
          } else {
            window.requestAnimationFrame(tick);
          }
        }).catch(function () { window.requestAnimationFrame(tick); });
      };
      tick();
    }).catch(function () { button.hidden = true; });
  });
})();
