import unittest

from app import auth


class AuthTests(unittest.TestCase):
    def setUp(self):
        auth.reset()
        auth.register("alice", "correct horse")

    def test_login_returns_a_token_for_valid_credentials(self):
        token = auth.login("alice", "correct horse")
        self.assertEqual(auth.current_user(token).username, "alice")

    def test_login_rejects_a_wrong_password(self):
        with self.assertRaises(auth.AuthError):
            auth.login("alice", "wrong password")

    def test_logout_ends_the_session(self):
        token = auth.login("alice", "correct horse")
        auth.logout(token)
        with self.assertRaises(auth.AuthError):
            auth.current_user(token)

    def test_short_passwords_are_refused(self):
        with self.assertRaises(auth.AuthError):
            auth.register("bob", "short")


if __name__ == "__main__":
    unittest.main()
