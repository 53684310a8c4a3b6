document.querySelector("h1").title = "built reproducibly";
//# sourceMappingURL=app.js.map
