// The seed's example in JavaScript: Node's cluster, one worker per CPU (--workers N), hello world on --port.
// NODE_CLUSTER_SCHED_POLICY=rr|none picks the policy; --workers 0 serves from one process, unclustered.
const cluster = require('node:cluster');
const http = require('node:http');
const os = require('node:os');

const option = (name, fallback) => {
  const at = process.argv.indexOf(name);
  return at >= 0 ? Number(process.argv[at + 1]) : fallback;
};
const port = option('--port', 8000);
const workers = option('--workers', os.availableParallelism());

if (cluster.isPrimary && workers > 0) {
  console.log(`Primary ${process.pid} is running`);
  for (let i = 0; i < workers; i++) cluster.fork();
  cluster.on('exit', (worker) => console.log(`worker ${worker.process.pid} died`));
} else {
  http.createServer((req, res) => {
    res.writeHead(200);
    res.end(req.url === '/pid' ? String(process.pid) : 'hello world\n');
  }).listen(port);
  console.log(`Worker ${process.pid} started`);
}
