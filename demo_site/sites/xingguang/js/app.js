// The course centre is built entirely by script: an HTTP fetch sees only "加载中…".
(function () {
  var app = document.getElementById('app');
  var courses = [
    ['小学数学提前学', '暑假两个月学完一年级下册全部内容，开学领先一步。'],
    ['少儿书法', '毛笔字基本笔画与结构，每周日下午上课。'],
    ['围棋启蒙', '从吃子到布局，培养专注力。']
  ];
  var html = '<h1>在线课堂 · 课程中心</h1><ul>';
  courses.forEach(function (c) { html += '<li><h3>' + c[0] + '</h3><p>' + c[1] + '</p></li>'; });
  html += '</ul><p><a href="/notice.html">查看学堂公告</a></p>';
  app.innerHTML = html;
})();
