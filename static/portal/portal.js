// Ask before an action that cannot be taken back (suspend, revoke, reverse, reject): a form with
// data-confirm="question" is sent only when the person says yes. Without JavaScript it is sent at once.
document.addEventListener("submit", (event) => {
  const question = event.target.getAttribute && event.target.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
