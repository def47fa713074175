// Seamline pages: file uploads to /api/files, child-table rows, ref pickers. No build step.
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

  // Ref pickers (templates/_field.html): one text box with a list box of records, the WAI-ARIA
  // combobox pattern. htmx asks GET /forms/F/pick/FIELD?q= as one types (250 ms after the last
  // key) and puts the options into the list box; this moves through them (↓ ↑), picks one
  // (Enter, click, tap, Tab on the highlighted one) into the hidden input that carries the
  // field's value, restores the chosen record on Escape or on leaving with unpicked text, and
  // clears the value when the text is cleared.
  function picker(element) {
    var box = element && element.closest ? element.closest("[data-picker]") : null;
    if (!box) return null;
    return {
      box: box,
      value: box.querySelector("input[type=hidden]"),
      input: box.querySelector("[role=combobox]"),
      list: box.querySelector("[role=listbox]"),
      status: box.querySelector(".picker-status"),
    };
  }

  function pickable(p) {
    return Array.prototype.slice.call(p.list.querySelectorAll('[role=option]:not([aria-disabled="true"])'));
  }

  function highlighted(p) {
    var id = p.input.getAttribute("aria-activedescendant");
    return id ? document.getElementById(id) : null;
  }

  function highlight(p, option) {
    var before = highlighted(p);
    if (before) before.setAttribute("aria-selected", "false");
    if (!option) { p.input.removeAttribute("aria-activedescendant"); return; }
    option.setAttribute("aria-selected", "true");
    p.input.setAttribute("aria-activedescendant", option.id);
    option.scrollIntoView({ block: "nearest" });
  }

  function show(p, open) {
    p.list.hidden = !open;
    p.input.setAttribute("aria-expanded", open ? "true" : "false");
    if (!open) highlight(p, null);
  }

  function say(p, text, kind) {
    p.status.textContent = text;
    p.box.dataset.status = kind || "";
  }

  function choose(p, option) {
    p.value.value = option.dataset.value;
    p.input.value = p.input.dataset.label = option.dataset.label;
    p.box.dataset.want = "";
    show(p, false);
    say(p, "");
    p.value.dispatchEvent(new Event("change", { bubbles: true }));
  }

  function restore(p) {
    p.input.value = p.input.dataset.label || "";
    p.box.dataset.want = "";
    show(p, false);
  }

  function typed(p) {  // the text to search for: none while it shows the chosen record
    return p.input.value === p.input.dataset.label ? "" : p.input.value.trim();
  }

  function open(p) {
    p.box.dataset.want = "1";
    if (p.list.dataset.q === typed(p) && p.list.children.length) show(p, true);
    else if (window.htmx) window.htmx.trigger(p.input, "picker-open");
  }

  function move(p, step) {
    var options = pickable(p);
    if (!options.length) return;
    var at = options.indexOf(highlighted(p));
    var next = at < 0 ? (step > 0 ? 0 : options.length - 1) : (at + step + options.length) % options.length;
    highlight(p, options[next]);
  }

  function pickerKey(p, event) {
    var isOpen = !p.list.hidden;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      if (!isOpen) open(p);
      else if (!event.altKey) move(p, event.key === "ArrowDown" ? 1 : -1);
    } else if (event.key === "Enter") {
      if (!isOpen && p.input.value === p.input.dataset.label) return;  // submits the form
      event.preventDefault();
      var options = pickable(p);
      var option = highlighted(p) || (options.length === 1 ? options[0] : null);
      if (isOpen && option) choose(p, option);
      else if (!isOpen) open(p);
    } else if (event.key === "Escape") {
      if (isOpen || p.input.value !== p.input.dataset.label) {
        event.preventDefault();
        restore(p);
      }
    } else if (event.key === "Tab" && isOpen && highlighted(p)) {
      choose(p, highlighted(p));  // and focus moves on
    }
  }

  document.addEventListener("keydown", function (event) {
    var target = event.target;
    if (target.matches && target.matches("[data-picker] [role=combobox]")) pickerKey(picker(target), event);
  });

  document.addEventListener("input", function (event) {
    var p = event.target.matches && event.target.matches("[data-picker] [role=combobox]") ? picker(event.target) : null;
    if (!p) return;
    if (p.input.value.trim() === "") {  // cleared: no record (a required one says so on saving)
      p.value.value = p.input.dataset.label = "";
      p.box.dataset.want = "";
      show(p, false);
      p.value.dispatchEvent(new Event("change", { bubbles: true }));
    } else {
      p.box.dataset.want = "1";
    }
  });

  document.addEventListener("focusout", function (event) {
    var p = event.target.matches && event.target.matches("[data-picker] [role=combobox]") ? picker(event.target) : null;
    if (p) restore(p);  // text not picked is not a value: show what the field holds
  });

  document.addEventListener("mousedown", function (event) {
    if (event.target.closest && event.target.closest("[data-picker] [role=listbox]")) event.preventDefault();
  });

  document.addEventListener("click", function (event) {
    var option = event.target.closest && event.target.closest("[data-picker] [role=option]");
    if (option && option.getAttribute("aria-disabled") !== "true") choose(picker(option), option);
  });

  document.addEventListener("focusin", function (event) {  // typing replaces the chosen record
    var p = event.target.matches && event.target.matches("[data-picker] [role=combobox]") ? picker(event.target) : null;
    if (p && p.input.value && p.input.value === p.input.dataset.label) p.input.select();
  });

  document.addEventListener("htmx:configRequest", function (event) {
    var p = picker(event.detail.elt);
    if (!p || event.detail.elt !== p.input) return;
    if (p.box.dataset.want !== "1") { event.preventDefault(); return; }  // cleared, or left
    event.detail.parameters.q = p.list.dataset.asked = typed(p);
  });

  document.addEventListener("htmx:beforeRequest", function (event) {
    var p = picker(event.detail.elt);
    if (!p || event.detail.elt !== p.input) return;
    p.list.setAttribute("aria-busy", "true");
    say(p, p.input.dataset.loading, "loading");
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    var p = picker(event.detail.elt);
    if (!p || event.detail.elt !== p.input) return;
    p.list.removeAttribute("aria-busy");
    if (!event.detail.successful) say(p, p.input.dataset.failed, "failed");
    else if (p.box.dataset.status === "loading") say(p, "");
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    var p = picker(event.detail.target);
    if (!p || event.detail.target !== p.list) return;
    p.list.dataset.q = p.list.dataset.asked || "";
    Array.prototype.forEach.call(p.list.querySelectorAll("[role=option]"), function (option, i) {
      option.id = p.list.id + "-" + i;
    });
    var count = pickable(p).length;
    say(p, count ? p.input.dataset.count.replace("{n}", String(count)) : p.input.dataset.none, "done");
    var wanted = p.box.dataset.want === "1" && document.activeElement === p.input;
    show(p, wanted);
    if (wanted && count) highlight(p, null);
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
