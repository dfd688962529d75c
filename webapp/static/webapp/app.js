// 减负 线索平台: small progressive enhancements only; every page works without this file.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  // ask before an approval/rejection is sent
  document.querySelectorAll("form.decide").forEach(function (form) {
    form.addEventListener("submit", function (ev) {
      var button = ev.submitter;
      if (button && button.value === "reject" && !window.confirm("确定驳回这条意见吗？")) { ev.preventDefault(); }
    });
  });
});
