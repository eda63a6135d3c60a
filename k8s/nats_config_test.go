package k8s

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	corev1 "k8s.io/api/core/v1"
)

// TestNATSConfigLoads runs each overlay's nats.conf through nats-server's
// own config parser (the version the root module embeds), so a typo or an
// unknown key fails here rather than in a crash-looping pod. The parser is
// newer than the nats:2.11 image: keep to settings 2.11 knows (all used
// here predate 2.10).
func TestNATSConfigLoads(t *testing.T) {
	dirs, err := overlayDirs()
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range dirs {
		t.Run(dir, func(t *testing.T) {
			c, err := loadCluster(dir)
			if err != nil {
				t.Fatal(err)
			}
			st := c.statefulSet("nats")
			if st == nil {
				t.Fatal("no StatefulSet nats")
			}
			// Every key of the ConfigMap, as the pod mounts them (nats.conf
			// includes nats-auth.conf).
			dir := t.TempDir()
			var conf string
			for _, v := range st.Spec.Template.Spec.Volumes {
				if v.ConfigMap != nil {
					if cm := c.configMap(st.Namespace, v.ConfigMap.Name); cm != nil {
						conf = cm.Data["nats.conf"]
						for k, data := range cm.Data {
							if err := os.WriteFile(filepath.Join(dir, k), []byte(data), 0o600); err != nil {
								t.Fatal(err)
							}
						}
					}
				}
			}
			if conf == "" {
				t.Fatal("no nats.conf")
			}
			path := filepath.Join(dir, "nats.conf")
			// The pod sets SERVER_NAME from its name, and the users'
			// passwords from the Secret chat-nats.
			t.Setenv("SERVER_NAME", "nats-0")
			for _, role := range natsRoles {
				if _, ok := natsPasswordEnv(natsContainer(st), role); !ok {
					t.Errorf("the NATS pod has no NATS_%s_PASSWORD from Secret chat-nats", strings.ToUpper(role))
				}
				t.Setenv("NATS_"+strings.ToUpper(role)+"_PASSWORD", role+"-password")
			}
			opts, err := server.ProcessConfigFile(path)
			if err != nil {
				t.Fatalf("nats-server rejects nats.conf: %v", err)
			}
			if opts.ServerName != "nats-0" {
				t.Errorf("server_name %q, want it from $SERVER_NAME", opts.ServerName)
			}
			if !opts.JetStream || opts.StoreDir != "/data" {
				t.Errorf("jetstream %v store_dir %q, want JetStream on /data", opts.JetStream, opts.StoreDir)
			}
			if opts.HTTPPort != 8222 || opts.Port != 4222 {
				t.Errorf("ports client %d monitor %d, want 4222 and 8222", opts.Port, opts.HTTPPort)
			}
			users := map[string]bool{}
			for _, u := range opts.Users {
				users[u.Username] = u.Password == u.Username+"-password" && u.Permissions != nil
			}
			for _, role := range natsRoles {
				if !users[role] {
					t.Errorf("no NATS user %s with its password from the environment and permissions", role)
				}
			}
			if opts.NoAuthUser != "" || len(opts.Users) != len(natsRoles) {
				t.Errorf("users %v, no_auth_user %q: want exactly %v", opts.Users, opts.NoAuthUser, natsRoles)
			}
			if opts.LameDuckDuration < 30*time.Second {
				t.Errorf("lame_duck_duration %v", opts.LameDuckDuration)
			}
			replicas := replicasOf(st.Spec.Replicas)
			if replicas > 1 {
				if len(opts.Routes) != int(replicas) || opts.Cluster.Port != 6222 || opts.Cluster.Name == "" {
					t.Errorf("cluster %q port %d with %d routes, want a named cluster on 6222 with %d routes",
						opts.Cluster.Name, opts.Cluster.Port, len(opts.Routes), replicas)
				}
			} else if len(opts.Routes) != 0 || opts.Cluster.Port != 0 {
				t.Errorf("a single server with cluster port %d and %d routes", opts.Cluster.Port, len(opts.Routes))
			}
		})
	}
}

// natsRoles are the NATS users of nats-auth.conf, one per chat role.
var natsRoles = []string{"gateway", "store", "push"}

// natsPasswordEnv finds NATS_<ROLE>_PASSWORD from Secret chat-nats key
// <role>-password in ct's environment.
func natsPasswordEnv(ct *corev1.Container, role string) (string, bool) {
	if ct == nil {
		return "", false
	}
	for _, e := range ct.Env {
		if e.Name == "NATS_"+strings.ToUpper(role)+"_PASSWORD" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil &&
			e.ValueFrom.SecretKeyRef.Name == "chat-nats" && e.ValueFrom.SecretKeyRef.Key == role+"-password" {
			return e.Name, true
		}
	}
	return "", false
}

// TestNATSConfigParserRefusesTypos shows the parser used above is strict.
func TestNATSConfigParserRefusesTypos(t *testing.T) {
	for _, conf := range []string{
		"lame_duk_duration: 30s\n",
		"jetstream { store_dirr: /data }\n",
		"lame_duck_duration: 5s\n", // below nats-server's minimum
	} {
		path := filepath.Join(t.TempDir(), "nats.conf")
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := server.ProcessConfigFile(path); err == nil {
			t.Errorf("%q accepted", conf)
		}
	}
}
