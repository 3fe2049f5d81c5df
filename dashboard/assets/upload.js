/* The Upload page's sender (dashboard/pages/upload.py).  The page's dcc.Upload is only the drop
   zone and file picker: this takes the chosen file in the capture phase, before dcc.Upload would
   read it into a base64 data URL, and POSTs its bytes to the server's upload URL, which writes
   them to disk as they arrive.  The job id it answers goes into the page's jobs store, which the
   page polls.  Messages are set as text (set_props children strings), never as HTML. */
window.dash_clientside = Object.assign({}, window.dash_clientside, {
    inspectorUpload: {
        install: function (config) {
            const say = (text) => window.dash_clientside.set_props(config.status, {children: text});
            const mib = (n) => (n / 1048576).toFixed(1);
            const jobs = [];
            const send = (file) => {
                if (config.maxSize > 0 && file.size > config.maxSize) {
                    say(file.name + ": not uploaded: " + mib(file.size) + " MiB is over the upload limit of " + mib(config.maxSize) + " MiB.");
                    return;
                }
                const xhr = new XMLHttpRequest();
                xhr.open("POST", config.url + "?name=" + encodeURIComponent(file.name));
                xhr.setRequestHeader("Content-Type", "application/octet-stream");
                xhr.upload.onprogress = (e) => {
                    if (e.lengthComputable) { say(file.name + ": uploading: " + Math.floor(100 * e.loaded / e.total) + "%."); }
                };
                xhr.onload = () => {
                    let answer = {};
                    try { answer = JSON.parse(xhr.responseText); } catch (err) { answer = {}; }
                    if (xhr.status === 202 && answer.job) {
                        jobs.push(answer.job);
                        window.dash_clientside.set_props(config.jobs, {data: jobs.slice()});
                    }
                    say(answer.line || (file.name + ": not uploaded: the server answered HTTP " + xhr.status + "."));
                };
                xhr.onerror = () => say(file.name + ": not uploaded: the connection to the dashboard failed.");
                say(file.name + ": uploading.");
                xhr.send(file);
            };
            const take = (event, files) => {
                event.preventDefault();
                event.stopPropagation();  // dcc.Upload never sees the file
                if (files && files.length) { send(files[0]); }
            };
            const install = (tries) => {
                const root = document.getElementById(config.upload);
                if (!root) { if (tries > 0) { setTimeout(() => install(tries - 1), 100); } return; }
                if (root.dataset.sender) { return; }
                root.dataset.sender = "1";
                root.addEventListener("change", (e) => {
                    const input = e.target;
                    take(e, input && input.files);
                    if (input) { input.value = ""; }  // the same file can be chosen again
                }, true);
                root.addEventListener("drop", (e) => take(e, e.dataTransfer && e.dataTransfer.files), true);
            };
            install(100);
            return "";
        }
    }
});
