// Placeholder for the main job (GANPO vs DPO on the embedded task); it lands with the main-job issue.
console.log('npm start: the main job (GANPO against DPO and SimPO on the embedded sentiment task) is not implemented yet.');
console.log('What exists now: the tensor engine and its tests. Run `npm test`.');
process.exit(0);
