"""Standard S3 clients against meshcdn-origin (issue 7): Debian 12's AWS CLI,
s3cmd and boto3, each with its own SigV4 signing and path-style addressing,
put, get, list and delete objects, and `aws s3 cp` uploads a 12 MiB file in
multipart. The clients come from Debian (deploy/deps.sh --test installs
awscli, s3cmd and python3-boto3); nothing is skipped when they are missing:
the test fails and says what to install. Settings are in origin/README.md.
"""

import hashlib
import json
import os
import shutil
import subprocess
import unittest

import mcharness as h

AK, SECRET = "AKIDCLIENTS", "clients/secret+KEY0123456789"
REGION = "eu-test-1"      # a test region: the signature scope must carry it
BUCKET = "clients"
AWS = "/usr/bin/aws"      # Debian's AWS CLI, not a pip one earlier on PATH
S3CMD = "/usr/bin/s3cmd"
PY = "/usr/bin/python3"   # Debian's interpreter, which has python3-boto3

BOTO3_SCRIPT = r"""
import json, sys
import boto3
from botocore.config import Config
endpoint, ak, secret, region, bucket = sys.argv[1:6]
s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ak,
                  aws_secret_access_key=secret, region_name=region,
                  config=Config(s3={"addressing_style": "path"}, signature_version="s3v4",
                                retries={"max_attempts": 1}))
out = {"version": boto3.__version__}
body = bytes(range(256)) * 1000
put = s3.put_object(Bucket=bucket, Key="boto3/dir/obj.bin", Body=body)
out["put_etag"] = put["ETag"]
got = s3.get_object(Bucket=bucket, Key="boto3/dir/obj.bin")
out["get_equal"] = got["Body"].read() == body
out["list"] = [c["Key"] for c in s3.list_objects_v2(Bucket=bucket, Prefix="boto3/")
               .get("Contents", [])]
out["delim"] = [p["Prefix"] for p in s3.list_objects_v2(Bucket=bucket, Prefix="boto3/",
                Delimiter="/").get("CommonPrefixes", [])]
out["buckets"] = [b["Name"] for b in s3.list_buckets()["Buckets"]]
s3.delete_object(Bucket=bucket, Key="boto3/dir/obj.bin")
out["after_delete"] = s3.list_objects_v2(Bucket=bucket, Prefix="boto3/").get("KeyCount")
try:
    s3.get_object(Bucket=bucket, Key="boto3/dir/obj.bin")
    out["get_deleted"] = "found"
except s3.exceptions.NoSuchKey:
    out["get_deleted"] = "NoSuchKey"
print(json.dumps(out))
"""


def need(path, package):
    if not os.access(path, os.X_OK):
        raise AssertionError(f"{path} missing: apt-get install {package} "
                             "(deploy/deps.sh --test installs it)")


class S3ClientsTest(unittest.TestCase):
    """One origin for the class; each client has its own key prefix."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = h.tempdir(prefix="meshcdn-clients-")
        cls.root = os.path.join(cls.tmp, "root")
        os.makedirs(os.path.join(cls.root, BUCKET))
        os.makedirs(os.path.join(cls.tmp, "outside"))
        with open(os.path.join(cls.tmp, "outside", "secret.txt"), "wb") as f:
            f.write(b"TOP-SECRET\n")
        # what no client may see: a link out of the root, a crashed upload's temporary
        os.symlink("../../outside/secret.txt", os.path.join(cls.root, BUCKET, "leak.txt"))
        with open(os.path.join(cls.root, BUCKET, ".meshcdn-tmp-00000000deadbeef"), "wb") as f:
            f.write(b"half")
        keys = h.write_keys(os.path.join(cls.tmp, "keys"), [(AK, SECRET)])
        cls.d = h.Daemon("meshcdn-origin", [
            "--root", cls.root, "--keys", keys, "--origin.region=" + REGION,
            "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"])
        cls.endpoint = cls.d.url("s3")
        cls.home = os.path.join(cls.tmp, "home")
        os.makedirs(cls.home)

    @classmethod
    def tearDownClass(cls):
        try:
            cls.d.stop()
        finally:
            shutil.rmtree(cls.tmp, True)

    def path(self, key):
        return os.path.join(self.root, BUCKET, key)

    def local(self, name, data):
        p = os.path.join(self.tmp, name)
        with open(p, "wb") as f:
            f.write(data)
        return p

    # -- AWS CLI ------------------------------------------------------------------

    def aws(self, *args, check=True):
        need(AWS, "awscli")
        cfg = os.path.join(self.home, "aws-config")
        with open(cfg, "w") as f:
            f.write(f"[default]\nregion = {REGION}\ns3 =\n    addressing_style = path\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(HOME=self.home, AWS_CONFIG_FILE=cfg, AWS_ACCESS_KEY_ID=AK,
                   AWS_SECRET_ACCESS_KEY=SECRET, AWS_DEFAULT_REGION=REGION,
                   AWS_SHARED_CREDENTIALS_FILE=os.path.join(self.home, "no-credentials"),
                   AWS_EC2_METADATA_DISABLED="true", AWS_PAGER="")
        p = subprocess.run([AWS, "--endpoint-url", self.endpoint] + list(args),
                           capture_output=True, text=True, env=env, timeout=60)
        if check:
            self.assertEqual(p.returncode, 0, f"aws {args}: {p.stdout}\n{p.stderr}")
        return p

    def test_aws_cli_s3_cp_ls_rm(self):
        data = os.urandom(200 * 1024)
        src = self.local("aws-small.glb", data)
        self.aws("s3", "cp", src, f"s3://{BUCKET}/aws/models/small.glb")
        with open(self.path("aws/models/small.glb"), "rb") as f:
            self.assertEqual(f.read(), data)
        ls = self.aws("s3", "ls", "--recursive", f"s3://{BUCKET}/").stdout
        self.assertIn("aws/models/small.glb", ls)
        self.assertNotIn("leak.txt", ls)
        self.assertNotIn(".meshcdn", ls)
        self.assertIn("PRE models/", self.aws("s3", "ls", f"s3://{BUCKET}/aws/").stdout)
        self.assertIn(BUCKET, self.aws("s3", "ls").stdout)
        dst = os.path.join(self.tmp, "aws-small.out")
        self.aws("s3", "cp", f"s3://{BUCKET}/aws/models/small.glb", dst)
        with open(dst, "rb") as f:
            self.assertEqual(f.read(), data)
        self.aws("s3", "rm", f"s3://{BUCKET}/aws/models/small.glb")
        self.assertFalse(os.path.exists(self.path("aws/models/small.glb")))

    def test_aws_cli_s3api_put_get_list_delete(self):
        data = b"s3api body\n" * 100
        src = self.local("s3api.bin", data)
        put = json.loads(self.aws("s3api", "put-object", "--bucket", BUCKET, "--key",
                                  "api/x y.bin", "--body", src).stdout)
        self.assertEqual(put["ETag"], f'"{hashlib.md5(data).hexdigest()}"')
        dst = os.path.join(self.tmp, "s3api.out")
        self.aws("s3api", "get-object", "--bucket", BUCKET, "--key", "api/x y.bin", dst)
        with open(dst, "rb") as f:
            self.assertEqual(f.read(), data)
        lst = json.loads(self.aws("s3api", "list-objects-v2", "--bucket", BUCKET,
                                  "--prefix", "api/").stdout)
        self.assertEqual([(c["Key"], c["Size"]) for c in lst["Contents"]],
                         [("api/x y.bin", len(data))])
        self.aws("s3api", "delete-object", "--bucket", BUCKET, "--key", "api/x y.bin")
        self.assertFalse(os.path.exists(self.path("api/x y.bin")))

    def test_aws_cli_multipart_upload_of_12_mib(self):
        data = os.urandom(12 << 20)
        src = self.local("big.glb", data)
        self.aws("s3", "cp", src, f"s3://{BUCKET}/mp/big.glb")
        with open(self.path("mp/big.glb"), "rb") as f:
            self.assertEqual(hashlib.sha256(f.read()).digest(), hashlib.sha256(data).digest())
        log = self.d.log()
        self.assertRegex(log, r"method=POST path=/clients/mp/big\.glb status=200")  # create
        self.assertGreaterEqual(len(__import__("re").findall(
            r"method=PUT path=/clients/mp/big\.glb status=200", log)), 2)       # parts
        self.assertEqual(os.listdir(os.path.join(self.root, ".meshcdn-uploads")), [])

    # -- s3cmd --------------------------------------------------------------------

    def s3cmd(self, *args):
        need(S3CMD, "s3cmd")
        cfg = os.path.join(self.home, "s3cfg")
        hostport = self.endpoint.split("//", 1)[1]
        with open(cfg, "w") as f:
            f.write(f"[default]\naccess_key = {AK}\nsecret_key = {SECRET}\n"
                    f"host_base = {hostport}\nhost_bucket = {hostport}\n"
                    f"bucket_location = {REGION}\nuse_https = False\nsignature_v2 = False\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env["HOME"] = self.home
        p = subprocess.run([S3CMD, "-c", cfg] + list(args), capture_output=True, text=True,
                           env=env, timeout=60)
        self.assertEqual(p.returncode, 0, f"s3cmd {args}: {p.stdout}\n{p.stderr}")
        return p.stdout

    def test_s3cmd_put_ls_get_del(self):
        data = os.urandom(50 * 1024)
        src = self.local("s3cmd.bin", data)
        self.s3cmd("put", src, f"s3://{BUCKET}/s3cmd/dir/obj.bin")
        with open(self.path("s3cmd/dir/obj.bin"), "rb") as f:
            self.assertEqual(f.read(), data)
        ls = self.s3cmd("ls", "-r", f"s3://{BUCKET}/")
        self.assertIn(f"s3://{BUCKET}/s3cmd/dir/obj.bin", ls)
        self.assertNotIn("leak.txt", ls)
        self.assertNotIn(".meshcdn", ls)
        self.assertIn(f"DIR  s3://{BUCKET}/s3cmd/dir/", self.s3cmd("ls", f"s3://{BUCKET}/s3cmd/"))
        dst = os.path.join(self.tmp, "s3cmd.out")
        self.s3cmd("get", "--force", f"s3://{BUCKET}/s3cmd/dir/obj.bin", dst)
        with open(dst, "rb") as f:
            self.assertEqual(f.read(), data)
        self.s3cmd("del", f"s3://{BUCKET}/s3cmd/dir/obj.bin")
        self.assertFalse(os.path.exists(self.path("s3cmd/dir/obj.bin")))

    # -- boto3 --------------------------------------------------------------------

    def test_boto3_put_get_list_delete(self):
        need(PY, "python3")
        p = subprocess.run([PY, "-c", BOTO3_SCRIPT, self.endpoint, AK, SECRET, REGION, BUCKET],
                           capture_output=True, text=True, timeout=60,
                           env={k: v for k, v in os.environ.items()
                                if not k.startswith(("AWS_", "PYTHON"))} | {"HOME": self.home})
        self.assertEqual(p.returncode, 0, "boto3 (apt-get install python3-boto3):\n" + p.stderr)
        out = json.loads(p.stdout)
        body = bytes(range(256)) * 1000
        self.assertEqual(out["put_etag"], f'"{hashlib.md5(body).hexdigest()}"')
        self.assertTrue(out["get_equal"])
        self.assertEqual(out["list"], ["boto3/dir/obj.bin"])
        self.assertEqual(out["delim"], ["boto3/dir/"])
        self.assertEqual(out["buckets"], [BUCKET])
        self.assertEqual(out["after_delete"], 0)
        self.assertEqual(out["get_deleted"], "NoSuchKey")


if __name__ == "__main__":
    unittest.main()
