// huijiao catalogue pages: the only script, served by the node itself. The pages work
// without it; it fills the city and county pickers as a province is chosen (from the
// public /api/v1/regions) and reloads the admin page.
"use strict";
(function () {
  function fill(select, items, placeholder) {
    select.innerHTML = "";
    var any = document.createElement("option");
    any.value = "";
    any.textContent = placeholder;
    select.appendChild(any);
    items.forEach(function (r) {
      var o = document.createElement("option");
      o.value = r.code;
      o.textContent = r.name;
      select.appendChild(o);
    });
  }
  function load(parent, select, placeholder) {
    fill(select, [], placeholder);
    if (!parent) return;
    fetch("/api/v1/regions?parent=" + encodeURIComponent(parent))
      .then(function (r) { return r.json(); })
      .then(function (j) { fill(select, j.regions || [], placeholder); })
      .catch(function () {});
  }
  var province = document.querySelector('select[data-level="province"]');
  var prefecture = document.querySelector('select[data-level="prefecture"]');
  var county = document.querySelector('select[data-level="county"]');
  if (province && prefecture && county) {
    province.addEventListener("change", function () {
      load(province.value, prefecture, "全部地市");
      fill(county, [], "全部区县");
    });
    prefecture.addEventListener("change", function () {
      load(prefecture.value, county, "全部区县");
    });
  }
  var refresh = document.querySelector("[data-refresh]");
  if (refresh) {
    setTimeout(function () { location.reload(); }, 1000 * Number(refresh.getAttribute("data-refresh")));
  }
})();
