package identity

// ConfirmPassword checks that password is the current password of p's own
// account, for acts that need fresh proof beyond a live session, such as
// issuing a break-glass admin kubeconfig. As in ChangePassword, a wrong
// password counts towards the account's sign-in lockout, so a stolen session
// cannot be used to guess it, and while the account is locked nothing is
// checked (fault.TooMany). A wrong password is fault.Forbidden: the
// session itself is valid. The caller audits the act it guards; nothing is
// recorded here, so one attempt is one audit event.
func (s *Service) ConfirmPassword(p *Principal, password string) error {
	if p == nil || p.UserID == "" {
		return ErrUnauthenticated
	}
	if password == "" || len(password) > MaxPasswordLength {
		return invalid("password must be 1 to %d characters", MaxPasswordLength)
	}
	lockKey := s.lockKey(p.Username)
	wait, lock, err := s.beginAttempt(lockKey)
	if err != nil {
		return err
	} else if wait > 0 {
		return locked(wait)
	}
	u, err := s.GetUser(p.UserID)
	if err != nil {
		// The account went away after the request was authenticated.
		BurnPasswordCheck(password)
		return ErrUnauthenticated
	}
	if VerifyPassword(u.PasswordHash, password) != nil {
		if lock > 0 {
			s.reportLockedOut(lockKey, u)
		}
		return forbidden("the password is wrong")
	}
	s.resetFailures(lockKey)
	return nil
}
