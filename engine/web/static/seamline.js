// Seamline pages: file uploads to /api/files, child-table rows, ref search. No build step.
(function () {
  "use strict";

  function csrf() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  function fileItem(box, file) {
    var li = document.createElement("li");
    var input = document.createElement("input");
    input.type = "hidden";
    input.name = box.dataset.name;
    input.value = file.id;
    var link = document.createElement("a");
    link.href = "/api/files/" + encodeURIComponent(file.id);
    link.textContent = file.name;
    var remove = document.createElement("button");
    remove.type = "button";
    remove.className = "link";
    remove.setAttribute("data-remove", "");
    remove.textContent = box.dataset.removeLabel || "x";
    li.append(input, link, " ", remove);
    return li;
  }

  async function upload(input) {
    var box = input.closest("[data-files]");
    var message = box.querySelector(".upload-msg");
    var list = box.querySelector("ul");
    for (var file of Array.from(input.files)) {
      message.classList.remove("error");
      message.textContent = box.dataset.uploading + " " + file.name;
      var body = new FormData();
      body.append("file", file, file.name);
      try {
        var response = await fetch(input.dataset.upload, {
          method: "POST",
          body: body,
          credentials: "same-origin",
          headers: { "X-CSRF-Token": csrf(), "Accept-Language": document.documentElement.lang },
        });
        var data = await response.json().catch(function () { return {}; });
        if (response.status === 201) {
          list.append(fileItem(box, data));
          message.textContent = "";
        } else {
          message.classList.add("error");
          message.textContent = (data.errors && data.errors[0] && data.errors[0].message) ||
            response.status + " " + response.statusText;
        }
      } catch (err) {
        message.classList.add("error");
        message.textContent = String(err);
      }
    }
    input.value = "";
  }

  function addRow(button) {
    var name = button.dataset.addRow;
    var template = document.getElementById("tpl-" + name);
    var rows = document.getElementById("rows-" + name);
    if (!template || !rows) return;
    var index = Number(button.dataset.next || "0");
    button.dataset.next = String(index + 1);
    var holder = document.createElement("tbody");
    holder.innerHTML = template.innerHTML.split("__i__").join(String(index));
    var row = holder.firstElementChild;
    rows.appendChild(row);
    if (window.htmx) window.htmx.process(row);
    var first = row.querySelector("input:not([type=hidden]), select, textarea");
    if (first) first.focus();
  }

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target.matches && target.matches("input[type=file][data-upload]")) upload(target);
  });

  document.addEventListener("click", function (event) {
    var target = event.target;
    if (!target.closest) return;
    if (target.closest("[data-remove]")) {
      var item = target.closest("li, tr");
      if (item) item.remove();
      return;
    }
    var add = target.closest("[data-add-row]");
    if (add) addRow(add);
  });

  // Enter in a ref search box searches; it must not submit the record form.
  document.addEventListener("keydown", function (event) {
    var target = event.target;
    if (event.key === "Enter" && target.matches && target.matches(".ref-picker input[type=search]")) {
      event.preventDefault();
    }
  });
  // Live record pages: a poll's out-of-band regions never replace one someone is typing in
  // (a focused control, or text typed and not yet sent); the poll asks again later.
  function busy(region) {
    var active = document.activeElement;
    if (active && region.contains(active) && active.matches("input, textarea, select")) return true;
    return Array.prototype.some.call(
      region.querySelectorAll("textarea, input[type=text], input[type=search]"),
      function (input) { return input.value !== input.defaultValue; }
    );
  }

  document.addEventListener("htmx:beforeSwap", function (event) {
    var elt = event.detail.elt;
    if (!elt || elt.id !== "live" || !event.detail.xhr || event.detail.xhr.status !== 200) return;
    var ids = ["record-head", "record-fields", "live-gates", "live-approvals", "history"];
    for (var i = 0; i < ids.length; i++) {
      var region = document.getElementById(ids[i]);
      if (region && busy(region)) { event.detail.shouldSwap = false; return; }
    }
  });
})();
