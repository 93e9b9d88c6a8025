package clusters

import (
	"errors"
	"time"

	"github.com/berthgw/berth/gateway/store"
)

// kubeconfigKey records the API key Berth minted for one user's kubeconfig
// of one cluster, so that downloading the kubeconfig again replaces that
// key instead of piling up keys that live for weeks.
type kubeconfigKey struct {
	Cluster   string    `json:"cluster"`
	UserID    string    `json:"user_id"`
	KeyID     string    `json:"key_id"`
	CreatedAt time.Time `json:"created_at"`
}

var kubeconfigKeys = store.NewTable[kubeconfigKey]("cluster_kubeconfig_keys")

// kubeconfigKeyID names the record of userID's kubeconfig for cluster.
// Cluster names are DNS labels, so the separator cannot occur in them.
func kubeconfigKeyID(cluster, userID string) string { return cluster + ":" + userID }

// mintedKubeconfigKey returns the id of the API key minted for userID's last
// kubeconfig of cluster, or "" when there is none.
func (s *Service) mintedKubeconfigKey(cluster, userID string) (string, error) {
	var id string
	err := s.db.View(func(tx *store.Tx) error {
		k, err := kubeconfigKeys.Get(tx, kubeconfigKeyID(cluster, userID))
		if err != nil {
			return err
		}
		id = k.KeyID
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return "", nil
	}
	return id, err
}

// recordKubeconfigKey records keyID as the API key of userID's kubeconfig for
// cluster.
func (s *Service) recordKubeconfigKey(cluster, userID, keyID string) error {
	return s.db.Update(func(tx *store.Tx) error {
		return kubeconfigKeys.Put(tx, kubeconfigKeyID(cluster, userID), &kubeconfigKey{
			Cluster: cluster, UserID: userID, KeyID: keyID, CreatedAt: s.opts.Now().UTC(),
		})
	})
}
